package tracing_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/visionmesh/vision/pkg/analyzer"
	"github.com/visionmesh/vision/pkg/embednats"
	"github.com/visionmesh/vision/pkg/gather"
	"github.com/visionmesh/vision/pkg/testimage"
	"github.com/visionmesh/vision/pkg/tracing"
	"github.com/visionmesh/vision/pkg/worker"
)

func connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// newTracing returns a Tracing that records its spans in memory.
func newTracing(t testing.TB) (*tracing.Tracing, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tracing.New(tp, tp.Shutdown), rec
}

// One trace: the HTTP request, a span per task, and the worker's job span
// as the child of its task's span, across NATS.
func TestTraceAcrossNATS(t *testing.T) {
	s, err := embednats.Start(embednats.Options{Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	tr, rec := newTracing(t)

	// A worker, traced.
	a := analyzer.Func(func(ctx context.Context, in analyzer.Input) (any, error) {
		if !trace.SpanContextFromContext(ctx).IsValid() {
			return nil, errors.New("the analyzer's context has no span")
		}
		return map[string]int{"bytes": len(in.Data)}, nil
	})
	var logs bytes.Buffer
	wnc := connect(t, s.ClientURL())
	w, err := worker.New(wnc, a, worker.Defaults("face"), slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	w.SetTracer(tr)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Shutdown(context.Background()) })
	if err := wnc.Flush(); err != nil { // the server has the subscription
		t.Fatal(err)
	}

	// The orchestrator's side: a traced gatherer behind the traced HTTP
	// middleware.
	g, err := gather.New(connect(t, s.ClientURL()), gather.Defaults())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	g.SetTracer(tr)
	ran := make(chan []gather.Outcome, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/analyze", func(w http.ResponseWriter, r *http.Request) {
		ran <- g.Run(r.Context(), gather.Job{ID: "job-1", Tasks: []string{"face", "plate"},
			Data: testimage.JPEG(16, 16, 80, 1), ContentType: "image/jpeg", Timeout: 5 * time.Second})
	})
	srv := httptest.NewServer(tr.Middleware(mux))
	t.Cleanup(srv.Close)

	const caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/analyze", strings.NewReader("x"))
	req.Header.Set("traceparent", caller)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	outs := <-ran
	if outs[0].Status != gather.StatusOK || outs[1].Status != gather.StatusUnavailable {
		t.Fatalf("outcomes: got %s %s, want ok unavailable (%v)", outs[0].Status, outs[1].Status, outs[0].Error)
	}

	spans := map[string]sdktrace.ReadOnlySpan{}
	for _, sp := range rec.Ended() {
		spans[sp.Name()] = sp
	}
	httpSpan, face, plate, job := spans["POST /v1/analyze"], spans["task face"], spans["task plate"], spans["job face"]
	if httpSpan == nil || face == nil || plate == nil || job == nil {
		t.Fatalf("spans: got %v, want the HTTP span, task face, task plate and job face", keys(spans))
	}
	if got := httpSpan.SpanContext().TraceID().String(); got != "0af7651916cd43dd8448eb211c80319c" {
		t.Errorf("trace id: got %s, want the caller's", got)
	}
	if got := httpSpan.Parent().SpanID().String(); got != "b7ad6b7169203331" {
		t.Errorf("HTTP span's parent: got %s, want the caller's span", got)
	}
	for _, sp := range []sdktrace.ReadOnlySpan{face, plate} {
		if sp.Parent().SpanID() != httpSpan.SpanContext().SpanID() {
			t.Errorf("%s: parent %s, want the HTTP span %s", sp.Name(), sp.Parent().SpanID(), httpSpan.SpanContext().SpanID())
		}
	}
	if job.Parent().SpanID() != face.SpanContext().SpanID() || !job.Parent().IsRemote() {
		t.Errorf("job span: parent %s (remote %v), want the face task's span %s, remote",
			job.Parent().SpanID(), job.Parent().IsRemote(), face.SpanContext().SpanID())
	}
	if job.SpanContext().TraceID() != httpSpan.SpanContext().TraceID() {
		t.Errorf("job span: trace %s, want %s", job.SpanContext().TraceID(), httpSpan.SpanContext().TraceID())
	}
	if plate.Status().Code.String() != "Error" {
		t.Errorf("plate task span: status %v, want Error (no worker)", plate.Status())
	}
	// The worker's log line of the job carries the trace id.
	if !strings.Contains(logs.String(), "trace_id=0af7651916cd43dd8448eb211c80319c") {
		t.Errorf("worker log has no trace_id:\n%s", logs.String())
	}
}

func keys(m map[string]sdktrace.ReadOnlySpan) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		on   bool
		err  error
	}{
		{"nothing set", nil, false, nil},
		{"endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, true, nil},
		{"traces endpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, true, nil},
		{"exporter none", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318", "OTEL_TRACES_EXPORTER": "none"}, false, nil},
		{"sdk disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318", "OTEL_SDK_DISABLED": "true"}, false, nil},
		{"grpc", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, false, tracing.ErrProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			getenv := func(k string) string { return tc.env[k] }
			tr, err := tracing.FromEnv(context.Background(), "test", getenv)
			if !errors.Is(err, tc.err) {
				t.Fatalf("got error %v, want %v", err, tc.err)
			}
			if (tr != nil) != tc.on {
				t.Errorf("got tracing %v, want on=%v", tr != nil, tc.on)
			}
			if err := tr.Shutdown(context.Background()); err != nil {
				t.Errorf("shutdown: %v", err)
			}
		})
	}
}

// A nil *Tracing traces nothing and wraps nothing.
func TestNilTracing(t *testing.T) {
	var tr *tracing.Tracing
	h := http.NotFoundHandler()
	if got := tr.Middleware(h); got == nil {
		t.Fatal("nil middleware")
	}
}

func TestLogHandler(t *testing.T) {
	tr, _ := newTracing(t)
	var buf bytes.Buffer
	log := slog.New(tracing.LogHandler(slog.NewTextHandler(&buf, nil))).With("app", "x")
	h := tr.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.InfoContext(r.Context(), "in span")
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	log.Info("no span")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "trace_id=") || strings.Contains(lines[1], "trace_id=") {
		t.Errorf("got %q, want trace_id on the first line only", lines)
	}
}
