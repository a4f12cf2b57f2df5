package tracing

import (
	"context"
	"net/http"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/visionmesh/vision/pkg/gather"
	"github.com/visionmesh/vision/pkg/job"
)

// Middleware traces every request h serves with a server span, a child of
// the caller's trace context (traceparent) when it sends one. It must be
// the outermost handler: the span is named after the route that the mux
// inside matched ("POST /v1/analyze").
func (t *Tracing) Middleware(h http.Handler) http.Handler {
	if t == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := t.tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(
				attribute.String("http.request.method", r.Method),
				attribute.String("url.path", r.URL.Path),
				attribute.String("client.address", r.RemoteAddr),
			))
		defer span.End()
		r = r.WithContext(ctx)
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		if r.Pattern != "" {
			span.SetName(r.Pattern)
			span.SetAttributes(attribute.String("http.route", r.Pattern))
		}
		code := sw.status
		if code == 0 {
			code = http.StatusOK
		}
		span.SetAttributes(attribute.Int("http.response.status_code", code))
		if code >= 500 {
			span.SetStatus(codes.Error, http.StatusText(code))
		}
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// StartTask starts the span of one task of a job, a child of ctx's span,
// and writes its trace context into h, which travels with every dispatch
// of the task, so that the worker's span is its child. It implements
// gather.Tracer; end closes the span with the task's outcome.
func (t *Tracing) StartTask(ctx context.Context, jobID, task string, h nats.Header) (end func(gather.Outcome)) {
	ctx, span := t.tracer.Start(ctx, "task "+task, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("vision.task", task),
			attribute.String("vision.job_id", jobID),
			attribute.String("messaging.system", "nats"),
		))
	t.Inject(ctx, h)
	return func(o gather.Outcome) {
		span.SetAttributes(
			attribute.String("vision.status", string(o.Status)),
			attribute.Int("vision.attempts", o.Attempts),
		)
		if o.Worker != "" {
			span.SetAttributes(attribute.String("vision.worker", o.Worker))
		}
		if o.Status != gather.StatusOK {
			msg := string(o.Status)
			if o.Error != nil {
				msg = o.Error.Message
			}
			span.SetStatus(codes.Error, msg)
		}
		span.End()
	}
}

var _ gather.Tracer = (*Tracing)(nil)

// StartJob starts a worker's span for a job it admitted, a child of the
// trace context in the job's headers. It implements worker.Tracer: it
// returns the context to run the job with, the trace id for the job's log
// line, and end, which closes the span with the error code replied ("" on
// success).
func (t *Tracing) StartJob(h nats.Header, task, jobID string) (ctx context.Context, traceID string, end func(code string)) {
	ctx = t.Extract(context.Background(), h)
	ctx, span := t.tracer.Start(ctx, "job "+task, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(
			attribute.String("vision.task", task),
			attribute.String("vision.job_id", jobID),
			attribute.String("vision.attempt", h.Get(job.HeaderAttempt)),
			attribute.String("messaging.system", "nats"),
		))
	return ctx, TraceID(ctx), func(code string) {
		if code != "" {
			span.SetAttributes(attribute.String("vision.error_code", code))
			span.SetStatus(codes.Error, "error "+code)
		}
		span.End()
	}
}
