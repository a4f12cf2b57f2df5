package bench

import (
	"fmt"
	"strings"
)

// Target is one of the performance targets (issue 4) checked against a
// run's results.
type Target struct {
	Name string `json:"name"`
	// Value is the measured figure, Limit what it is held to: Value < Limit
	// when Below, else Value >= Limit. A Limit of zero means the figure is
	// only reported.
	Value float64 `json:"value"`
	Limit float64 `json:"limit,omitempty"`
	Below bool    `json:"below,omitempty"`
	Unit  string  `json:"unit"`
	// Met is whether Value meets Limit; Missing that the run lacked the
	// scenarios to tell.
	Met     bool   `json:"met"`
	Missing bool   `json:"missing,omitempty"`
	Note    string `json:"note,omitempty"`
}

func (t Target) String() string {
	verdict := "MISSED"
	switch {
	case t.Missing:
		return fmt.Sprintf("[ n/a  ] %s: not measured in this run", t.Name)
	case t.Limit == 0:
		verdict = "report"
	case t.Met:
		verdict = " met  "
	}
	s := fmt.Sprintf("[%s] %s: %s %s", verdict, t.Name, num(t.Value), t.Unit)
	if t.Limit != 0 {
		op := ">="
		if t.Below {
			op = "<"
		}
		s += fmt.Sprintf(" (target %s %s)", op, num(t.Limit))
	}
	if t.Note != "" {
		s += "; " + t.Note
	}
	return s
}

// Targets checks results against the targets of issue 4.
func Targets(results []Result) []Target {
	by := map[string]*Result{}
	for i := range results {
		by[results[i].Name] = &results[i]
	}
	find := func(prefix string) *Result {
		for i := range results {
			if strings.HasPrefix(results[i].Name, prefix) {
				return &results[i]
			}
		}
		return nil
	}
	below := func(name string, r *Result, v func(*Result) float64, limit float64, unit string) Target {
		t := Target{Name: name, Limit: limit, Below: true, Unit: unit}
		if r == nil || r.OK == 0 {
			t.Missing = true
			return t
		}
		t.Value = v(r)
		t.Met = t.Value < limit && r.Errors == 0
		if r.Errors > 0 {
			t.Note = fmt.Sprintf("%d errors", r.Errors)
		}
		return t
	}
	ratio := func(name string, a, b *Result, limit float64) Target {
		t := Target{Name: name, Limit: limit, Unit: "x"}
		if a == nil || b == nil || b.RPS == 0 {
			t.Missing = true
			return t
		}
		t.Value = a.RPS / b.RPS
		t.Met = t.Value >= limit && a.Errors == 0 && b.Errors == 0
		t.Note = fmt.Sprintf("%s req/s vs %s req/s", num(a.RPS), num(b.RPS))
		return t
	}
	p50 := func(r *Result) float64 { return r.Overhead.P50 }
	p99 := func(r *Result) float64 { return r.Overhead.P99 }

	var out []Target
	for _, c := range []string{"c1", "c16"} {
		r := by["zero/20KB/"+c+"/concurrent"]
		a, b := below("overhead p50, 20 KB, "+clients(c), r, p50, 0.5, "ms"), below("overhead p99, 20 KB, "+clients(c), r, p99, 3, "ms")
		if c != "c1" && r != nil && r.RPS > 0 {
			// Little's law: closed-loop latency is clients / throughput.
			note := fmt.Sprintf("closed loop: latency >= %d clients / %s req/s = %s ms", r.Clients, num(r.RPS), num(float64(r.Clients)/r.RPS*1000))
			a.Note, b.Note = note, note
		}
		out = append(out, a, b)
		if c == "c1" {
			continue
		}
		var paced *Result
		for i := range results {
			if rs := &results[i]; rs.Group == GroupZero && rs.Image == "20KB" && rs.Clients == 16 && rs.Rate > 0 && rs.System == Concurrent {
				paced = rs
			}
		}
		if paced != nil {
			what := fmt.Sprintf("20 KB, 16 clients paced at %g req/s", paced.Rate)
			out = append(out, below("overhead p50, "+what, paced, p50, 0.5, "ms"), below("overhead p99, "+what, paced, p99, 3, "ms"))
		}
	}
	out = append(out, ratio("zero-work throughput, 20 KB, 16 clients, vs baseline",
		by["zero/20KB/c16/concurrent"], by["zero/20KB/c16/baseline"], 2))
	out = append(out, below("overhead p50, 2 MB, 1 client", by["zero/2MB/c1/concurrent"], p50, 10, "ms"))
	out = append(out, ratio("50 ms tasks, throughput at 4 replicas vs 1",
		find("work50ms/r4/"), find("work50ms/r1/"), 3.6))

	rss := Target{Name: "orchestrator peak RSS, 2 MB, 64 clients", Unit: "MB"}
	if r := by["zero/2MB/c64/concurrent"]; r != nil && r.FrontRSSMB > 0 {
		rss.Value, rss.Met = r.FrontRSSMB, true
		if b := by["zero/2MB/c64/baseline"]; b != nil && b.FrontRSSMB > 0 {
			rss.Note = fmt.Sprintf("baseline front %s MB", num(b.FrontRSSMB))
		}
	} else {
		rss.Missing = true
	}
	out = append(out, rss)

	c, s := find("work3s/c1/concurrent"), find("work3s/c1/serial")
	if c != nil && s != nil {
		out = append(out, Target{
			Name: "3 s tasks: serial vs concurrent latency", Value: s.Latency.P50 / c.Latency.P50, Unit: "x", Met: true,
			Note: fmt.Sprintf("serial %s ms, concurrent %s ms", num(s.Latency.P50), num(c.Latency.P50)),
		})
	}
	return out
}

func clients(c string) string {
	if c == "c1" {
		return "1 client"
	}
	return strings.TrimPrefix(c, "c") + " clients"
}
