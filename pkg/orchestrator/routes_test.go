package orchestrator_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/visionmesh/vision/pkg/discovery"
	"github.com/visionmesh/vision/pkg/orchestrator"
	"github.com/visionmesh/vision/pkg/testimage"
)

// GET /v1/workers lists the dev mode's one replica of every task.
func TestWorkers(t *testing.T) {
	o := startDev(t)
	var rep discovery.Report
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get("http://" + o.Addr() + "/v1/workers")
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&rep)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("got %d (%v), want 200 and a report", resp.StatusCode, err)
		}
		all := len(rep.Tasks) == 3
		for _, p := range rep.Tasks {
			all = all && p.Replicas == 1
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %+v, want vehicle, plate and face with one replica each", rep.Tasks)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
	for i, want := range []string{"vehicle", "plate", "face"} {
		if got := rep.Tasks[i].Task; got != want {
			t.Errorf("pool %d: got %s, want %s", i, got, want)
		}
	}
}

// With API keys, GET /v1/workers needs one like POST /v1/analyze.
func TestWorkersNeedsKey(t *testing.T) {
	o := startDev(t, "-api-keys", "secret")
	resp, err := http.Get("http://" + o.Addr() + "/v1/workers")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("got %d, want 401", resp.StatusCode)
	}
}

// The web page is served at / and needs no key (it asks for one when the
// API does); GET /v1/analyze is still not a page.
func TestPage(t *testing.T) {
	o := startDev(t, "-api-keys", "secret")
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/", http.StatusOK},
		{"/web/app.js", http.StatusOK},
		{"/v1/analyze", http.StatusMethodNotAllowed},
	} {
		resp, err := http.Get("http://" + o.Addr() + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET %s: got %d, want %d", tc.path, resp.StatusCode, tc.want)
		}
	}
}

// GET /metrics counts the requests by route and the tasks by status.
func TestMetrics(t *testing.T) {
	o := startDev(t)
	base := "http://" + o.Addr()
	resp, err := http.Post(base+"/v1/analyze", "image/jpeg", bytes.NewReader(testimage.JPEG(32, 24, 80, 1)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("analyze: got %d, want 200", resp.StatusCode)
	}
	resp, err = http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(b)
	for _, want := range []string{
		`vision_http_requests_total{code="200",route="POST /v1/analyze"} 1`,
		`vision_task_duration_seconds_count{status="ok",task="vehicle"} 1`,
		`vision_task_duration_seconds_count{status="ok",task="face"} 1`,
		`vision_analyze_image_bytes_count 1`,
		`vision_nats_connected 1`,
		`vision_gather_pending_tasks 0`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("no %q in the scrape", want)
		}
	}
}

// lockedBuffer is a bytes.Buffer safe for one writer and one reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// collector is an OTLP/HTTP trace collector that keeps the span names.
type collector struct {
	mu    sync.Mutex
	names map[string]int
	trace map[string]bool // trace ids
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var req coltrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				c.names[sp.Name]++
				c.trace[hex.EncodeToString(sp.TraceId)] = true
			}
		}
	}
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	b, _ = proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	w.Write(b)
}

// With OTEL_EXPORTER_OTLP_ENDPOINT set, Run traces the request, its tasks
// and the dev workers' jobs, and the request's log line has the trace id.
func TestTracing(t *testing.T) {
	col := &collector{names: map[string]int{}, trace: map[string]bool{}}
	srv := httptest.NewServer(col)
	t.Cleanup(srv.Close)
	env := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": srv.URL}
	var out lockedBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- orchestrator.Run(ctx, []string{"-dev", "-dev-nats-port=-1", "-addr", "127.0.0.1:0", "-analyzer", "simulate", "-work", "5ms"},
			func(k string) string { return env[k] }, &out)
	}()
	addrRE := regexp.MustCompile(`msg="orchestrator listening" addr=(\S+)`)
	var addr string
	deadline := time.Now().Add(10 * time.Second)
	for addr == "" {
		if m := addrRE.FindStringSubmatch(out.String()); m != nil {
			addr = m[1]
		} else if time.Now().After(deadline) {
			cancel()
			t.Fatalf("orchestrator not listening after 10s:\n%s", out.String())
		} else {
			time.Sleep(10 * time.Millisecond) // poll interval
		}
	}
	resp, err := http.Post("http://"+addr+"/v1/analyze", "image/jpeg", bytes.NewReader(testimage.JPEG(32, 24, 80, 1)))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}

	// Shutdown flushed the spans.
	col.mu.Lock()
	defer col.mu.Unlock()
	for _, name := range []string{"POST /v1/analyze", "task vehicle", "task plate", "task face", "job vehicle", "job plate", "job face"} {
		if col.names[name] != 1 {
			t.Errorf("span %q: got %d, want 1 (all: %v)", name, col.names[name], col.names)
		}
	}
	if len(col.trace) != 1 {
		t.Errorf("got %d traces, want 1", len(col.trace))
	}
	m := regexp.MustCompile(`msg=analyze .*trace_id=([0-9a-f]{32})`).FindStringSubmatch(out.String())
	if m == nil || !col.trace[m[1]] {
		t.Errorf("the analyze log line has no trace id of the trace:\n%s", out.String())
	}
}
