package bench

import (
	"math"
	"slices"
	"time"
)

// Summarize returns the percentiles of ds by the nearest-rank method (the
// p-th percentile is the smallest value that at least p% of the values do
// not exceed). It sorts ds in place. An empty ds gives zeros.
func Summarize(ds []time.Duration) Percentiles {
	if len(ds) == 0 {
		return Percentiles{}
	}
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	rank := func(p float64) float64 {
		i := int(math.Ceil(p/100*float64(len(ds)))) - 1
		return msec(ds[max(i, 0)])
	}
	return Percentiles{
		P50:  rank(50),
		P90:  rank(90),
		P99:  rank(99),
		Max:  msec(ds[len(ds)-1]),
		Mean: msec(sum / time.Duration(len(ds))),
	}
}

// msec converts d to milliseconds, rounded to the microsecond.
func msec(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
