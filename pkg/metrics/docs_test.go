package metrics_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/visionmesh/vision/pkg/gather"
	"github.com/visionmesh/vision/pkg/metrics"
)

// names returns every series name the orchestrator and the workers export
// (histograms with their _bucket, _sum and _count series).
func names(t *testing.T) map[string]bool {
	t.Helper()
	nc := connect(t)
	g, err := gather.New(nc, gather.Defaults())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	o := metrics.NewOrchestrator(nc, g)
	o.ObserveAnalyze("concurrent", 200, 1, []gather.Outcome{{Task: "face", Status: gather.StatusOK, Attempts: 2}})
	o.ObserveRefused("overloaded")
	o.Instrument(http.NotFoundHandler()).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	w := metrics.NewWorker("face", func() metrics.JobCounters { return metrics.JobCounters{} }, nc)
	w.ObserveJob("face", "", time.Millisecond)

	out := map[string]bool{}
	for _, reg := range []interface {
		Gather() ([]*dto.MetricFamily, error)
	}{o.Registry(), w.Registry()} {
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			out[f.GetName()] = true
			if f.GetType() == dto.MetricType_HISTOGRAM {
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					out[f.GetName()+s] = true
				}
			}
		}
	}
	return out
}

// TestDashboard: docs/grafana-dashboard.json is valid JSON and every
// metric its queries use exists.
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile("../../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	have := names(t)
	used := 0
	metricRE := regexp.MustCompile(`\bvision_[a-z_]+`)
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, name := range metricRE.FindAllString(tg.Expr, -1) {
				used++
				if !have[name] {
					t.Errorf("panel %q uses %s, which no process exports", p.Title, name)
				}
			}
		}
	}
	if used == 0 {
		t.Errorf("the dashboard queries no vision_ metric")
	}
}
