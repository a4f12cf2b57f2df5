package bench_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/visionmesh/vision/pkg/bench"
)

func TestSummarize(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[len(hundred)-1-i] = time.Duration(i+1) * time.Millisecond // reversed: Summarize sorts
	}
	tests := []struct {
		name string
		ds   []time.Duration
		want bench.Percentiles
	}{
		{"empty", nil, bench.Percentiles{}},
		{"one", []time.Duration{1500 * time.Microsecond}, bench.Percentiles{P50: 1.5, P90: 1.5, P99: 1.5, Max: 1.5, Mean: 1.5}},
		{"1 to 100 ms", hundred, bench.Percentiles{P50: 50, P90: 90, P99: 99, Max: 100, Mean: 50.5}},
		{"nearest rank", []time.Duration{4 * time.Millisecond, time.Millisecond, 3 * time.Millisecond, 2 * time.Millisecond},
			bench.Percentiles{P50: 2, P90: 4, P99: 4, Max: 4, Mean: 2.5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := bench.Summarize(tc.ds); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func ExampleSummarize() {
	ds := []time.Duration{
		900 * time.Microsecond, 1 * time.Millisecond, 1100 * time.Microsecond,
		1200 * time.Microsecond, 9 * time.Millisecond,
	}
	p := bench.Summarize(ds)
	fmt.Printf("p50 %.1f ms, p90 %.1f ms, max %.1f ms\n", p.P50, p.P90, p.Max)
	// Output: p50 1.1 ms, p90 9.0 ms, max 9.0 ms
}
