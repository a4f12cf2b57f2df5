package metrics_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/visionmesh/vision/pkg/embednats"
	"github.com/visionmesh/vision/pkg/gather"
	"github.com/visionmesh/vision/pkg/job"
	"github.com/visionmesh/vision/pkg/metrics"
)

func connect(t testing.TB) *nats.Conn {
	t.Helper()
	s, err := embednats.Start(embednats.Options{Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// scrape GETs the metrics from h in the Prometheus text format.
func scrape(t testing.TB, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: got %d, want 200", rec.Code)
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

// wantSeries checks that every line (a series and its value, as the text
// format writes them; a regexp) is in the scrape.
func wantSeries(t testing.TB, text string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !regexp.MustCompile(`(?m)^` + l + `$`).MatchString(text) {
			t.Errorf("no line %q in the scrape", l)
		}
	}
}

func TestOrchestrator(t *testing.T) {
	nc := connect(t)
	g, err := gather.New(nc, gather.Defaults())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	m := metrics.NewOrchestrator(nc, g)

	// Nobody serves the task: the job is unavailable at once.
	outs := g.Run(context.Background(), gather.Job{ID: "j1", Tasks: []string{"face"}, Data: []byte("x"),
		ContentType: "image/jpeg", Timeout: time.Second})
	m.ObserveAnalyze("concurrent", http.StatusServiceUnavailable, 20000, outs)
	m.ObserveAnalyze("concurrent", http.StatusOK, 30000, []gather.Outcome{
		{Task: "vehicle", Status: gather.StatusOK, Elapsed: 40 * time.Millisecond, Attempts: 3},
	})
	m.ObserveRefused("overloaded")
	m.ObserveRefused("overloaded")

	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/analyze", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusMultiStatus) })
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	h := m.Instrument(mux)
	for _, r := range []*http.Request{
		httptest.NewRequest(http.MethodPost, "/v1/analyze", strings.NewReader("x")),
		httptest.NewRequest(http.MethodGet, "/healthz", nil),
		httptest.NewRequest(http.MethodGet, "/healthz", nil),
		httptest.NewRequest(http.MethodGet, "/random/path/1", nil),
	} {
		h.ServeHTTP(httptest.NewRecorder(), r)
	}

	text := scrape(t, m.Handler())
	wantSeries(t, text,
		`vision_http_requests_total\{code="207",route="POST /v1/analyze"\} 1`,
		`vision_http_requests_total\{code="200",route="GET /healthz"\} 2`,
		`vision_http_requests_total\{code="404",route="none"\} 1`,
		`vision_http_request_duration_seconds_count\{route="GET /healthz"\} 2`,
		`vision_http_requests_in_flight 0`,
		`vision_task_duration_seconds_count\{status="unavailable",task="face"\} 1`,
		`vision_task_duration_seconds_bucket\{status="ok",task="vehicle",le="0.05"\} 1`,
		`vision_task_duration_seconds_bucket\{status="ok",task="vehicle",le="0.025"\} 0`,
		`vision_task_redispatches_total\{task="vehicle"\} 2`,
		`vision_analyze_refused_total\{code="overloaded"\} 2`,
		`vision_analyze_image_bytes_count 2`,
		`vision_analyze_image_bytes_sum 50000`,
		`vision_nats_connected 1`,
		`vision_nats_reconnects_total 0`,
		`vision_gather_dropped_replies_total 0`,
		`vision_gather_pending_tasks 0`,
		`go_goroutines \d+`,
	)

	nc.Close()
	wantSeries(t, scrape(t, m.Handler()), `vision_nats_connected 0`)
}

func TestWorker(t *testing.T) {
	c := metrics.JobCounters{Concurrency: 4, InFlight: 2, Queued: 1, Done: 10, Failed: 3, Refused: 2, Expired: 1}
	m := metrics.NewWorker("plate", func() metrics.JobCounters { return c }, nil)
	m.ObserveJob("plate", "", 30*time.Millisecond)
	m.ObserveJob("plate", "", 30*time.Millisecond)
	m.ObserveJob("plate", job.CodeBadImage, time.Millisecond)
	m.ObserveJob("plate", job.CodeFailed, time.Millisecond)

	text := scrape(t, m.Handler())
	wantSeries(t, text,
		`vision_worker_jobs_total\{status="done",task="plate"\} 10`,
		`vision_worker_jobs_total\{status="failed",task="plate"\} 3`,
		`vision_worker_jobs_total\{status="refused",task="plate"\} 2`,
		`vision_worker_jobs_total\{status="expired",task="plate"\} 1`,
		`vision_worker_jobs_in_flight\{task="plate"\} 2`,
		`vision_worker_jobs_queued\{task="plate"\} 1`,
		`vision_worker_concurrency\{task="plate"\} 4`,
		`vision_worker_job_duration_seconds_count\{status="ok",task="plate"\} 2`,
		`vision_worker_job_duration_seconds_count\{status="bad_image",task="plate"\} 1`,
		`vision_worker_job_duration_seconds_count\{status="failed",task="plate"\} 1`,
	)
	if strings.Contains(text, "vision_nats_connected") {
		t.Errorf("NATS metrics without a connection")
	}
}
