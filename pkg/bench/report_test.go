package bench_test

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/visionmesh/vision/pkg/bench"
)

// fakeResults gives every scenario of the full plan made-up figures.
func fakeResults() []bench.Result {
	var out []bench.Result
	for i, s := range bench.FullPlan().Scenarios() {
		if s.Round > 1 {
			continue // Runner.Run pools rounds into one result
		}
		r := bench.Result{Scenario: s, OK: 100, RPS: float64(100 + 10*i), Replicas: s.Topology.Replicas, WorkMS: float64(s.Topology.Work.Milliseconds())}
		r.Latency = bench.Percentiles{P50: r.WorkMS + 0.4, P90: r.WorkMS + 0.8, P99: r.WorkMS + 2, Max: r.WorkMS + 5}
		r.Overhead = bench.Percentiles{P50: 0.4, P90: 0.8, P99: 2, Max: 5}
		r.FrontRSSMB = 50
		out = append(out, r)
	}
	return out
}

// checkSVG fails t unless b is well-formed XML with an svg root.
func checkSVG(t *testing.T, b []byte) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	root := ""
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("chart is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && root == "" {
			root = se.Name.Local
		}
	}
	if root != "svg" {
		t.Errorf("got root element %q, want svg", root)
	}
}

func TestWriteSVG(t *testing.T) {
	tests := []struct {
		name         string
		results      []bench.Result
		wantMissing  int
		wantContains []string
	}{
		{"full", fakeResults(), 0, []string{"Zero-work throughput, 20 KB JPEG", "three 3s tasks", "4 replicas", "stroke-dasharray"}},
		{"empty", nil, 6, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := (bench.Report{Results: tc.results}).WriteSVG(&b); err != nil {
				t.Fatal(err)
			}
			checkSVG(t, b.Bytes())
			if got := strings.Count(b.String(), "not measured in this run"); got != tc.wantMissing {
				t.Errorf("got %d empty panels, want %d", got, tc.wantMissing)
			}
			for _, s := range tc.wantContains {
				if !strings.Contains(b.String(), s) {
					t.Errorf("chart lacks %q", s)
				}
			}
		})
	}
}

func TestTargets(t *testing.T) {
	rs := fakeResults()
	set := func(name string, fn func(*bench.Result)) {
		for i := range rs {
			if rs[i].Name == name {
				fn(&rs[i])
				return
			}
		}
		t.Fatalf("no scenario %s", name)
	}
	set("zero/20KB/c16/concurrent", func(r *bench.Result) { r.RPS = 3000; r.Overhead.P99 = 4 })
	set("zero/20KB/c16/baseline", func(r *bench.Result) { r.RPS = 1000 })
	set("work50ms/r1/c16/concurrent", func(r *bench.Result) { r.RPS = 20 })
	set("work50ms/r4/c64/concurrent", func(r *bench.Result) { r.RPS = 70 })

	got := map[string]bench.Target{}
	for _, tg := range bench.Targets(rs) {
		got[tg.Name] = tg
	}
	tests := []struct {
		name    string
		met     bool
		value   float64
		missing bool
	}{
		{"overhead p50, 20 KB, 1 client", true, 0.4, false},
		{"overhead p99, 20 KB, 16 clients", false, 4, false},
		{"zero-work throughput, 20 KB, 16 clients, vs baseline", true, 3, false},
		{"50 ms tasks, throughput at 4 replicas vs 1", false, 3.5, false},
		{"orchestrator peak RSS, 2 MB, 64 clients", true, 50, false},
	}
	for _, tc := range tests {
		tg, ok := got[tc.name]
		if !ok {
			t.Errorf("no target %q", tc.name)
			continue
		}
		if tg.Met != tc.met || tg.Value != tc.value || tg.Missing != tc.missing {
			t.Errorf("%s: got met %v value %v missing %v, want %v %v %v", tc.name, tg.Met, tg.Value, tg.Missing, tc.met, tc.value, tc.missing)
		}
	}
	if tg := bench.Targets(nil); len(tg) == 0 || !tg[0].Missing {
		t.Errorf("with no results: got %+v, want targets marked missing", tg)
	}
}
