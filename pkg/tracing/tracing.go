// Package tracing adds OpenTelemetry traces to the orchestrator and the
// workers: one trace per analysis shows the HTTP request, each task's
// dispatch and each worker's job. The W3C trace context travels in the
// NATS headers traceparent and tracestate.
//
// Tracing is off unless the standard OTEL_* environment asks for it
// (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
// OTEL_TRACES_EXPORTER=otlp; OTEL_SDK_DISABLED=true turns it off). Spans go
// to an OTLP/HTTP collector configured by the same variables
// (OTEL_EXPORTER_OTLP_HEADERS, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
// OTEL_TRACES_SAMPLER, ...). Nothing is set globally: a Tracing value is
// handed to what it traces.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// ErrProtocol means OTEL_EXPORTER_OTLP_PROTOCOL asks for an exporter this
// build does not have.
var ErrProtocol = errors.New("unsupported OTLP protocol (this build exports http/protobuf)")

// Tracing makes the spans of one process.
type Tracing struct {
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator
	shutdown func(context.Context) error
}

// Enabled reports whether the environment asks for traces.
func Enabled(getenv func(string) string) bool {
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return false
	}
	switch strings.ToLower(getenv("OTEL_TRACES_EXPORTER")) {
	case "none":
		return false
	case "otlp":
		return true
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// FromEnv returns the process's Tracing when the environment asks for
// traces, else nil (and a nil *Tracing traces nothing). service is the
// default service.name; OTEL_SERVICE_NAME overrides it.
func FromEnv(ctx context.Context, service string, getenv func(string) string) (*Tracing, error) {
	if !Enabled(getenv) {
		return nil, nil
	}
	proto := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	if proto != "" && proto != "http/protobuf" {
		return nil, fmt.Errorf("tracing: %q: %w", proto, ErrProtocol)
	}
	// The exporter reads the other OTEL_EXPORTER_OTLP_* variables (headers,
	// TLS, timeout, compression) from the process environment itself.
	var opts []otlptracehttp.Option
	if v := getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); v != "" {
		opts = append(opts, otlptracehttp.WithEndpointURL(v))
	} else if v := getenv("OTEL_EXPORTER_OTLP_ENDPOINT"); v != "" {
		opts = append(opts, otlptracehttp.WithEndpointURL(strings.TrimSuffix(v, "/")+"/v1/traces"))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", service)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES win
		resource.WithTelemetrySDK(),
		resource.WithHost(),
	)
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	// The sampler comes from OTEL_TRACES_SAMPLER (default: parent-based,
	// always on).
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return New(tp, tp.Shutdown), nil
}

// New returns a Tracing whose spans come from tp (tests use an in-memory
// exporter); shutdown, if not nil, is what Shutdown calls.
func New(tp trace.TracerProvider, shutdown func(context.Context) error) *Tracing {
	return &Tracing{
		tracer:   tp.Tracer("github.com/visionmesh/vision"),
		prop:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		shutdown: shutdown,
	}
}

// Shutdown sends the spans still buffered and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil || t.shutdown == nil {
		return nil
	}
	return t.shutdown(ctx)
}

// headerCarrier lets the propagator read and write NATS headers, whose
// keys keep their case (traceparent, tracestate).
type headerCarrier nats.Header

func (c headerCarrier) Get(key string) string { return nats.Header(c).Get(key) }
func (c headerCarrier) Set(key, value string) { nats.Header(c).Set(key, value) }
func (c headerCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// Inject writes ctx's trace context into h.
func (t *Tracing) Inject(ctx context.Context, h nats.Header) {
	t.prop.Inject(ctx, headerCarrier(h))
}

// Extract returns ctx with the trace context of h.
func (t *Tracing) Extract(ctx context.Context, h nats.Header) context.Context {
	return t.prop.Extract(ctx, headerCarrier(h))
}

// TraceID returns the trace id of ctx's span, or "" when there is none.
func TraceID(ctx context.Context) string {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		return sc.TraceID().String()
	}
	return ""
}

// LogHandler adds the trace_id of the record's context to every record
// logged with a context that holds a span (InfoContext, ...).
func LogHandler(h slog.Handler) slog.Handler { return logHandler{h} }

type logHandler struct{ slog.Handler }

func (h logHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := TraceID(ctx); id != "" {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return logHandler{h.Handler.WithAttrs(as)}
}

func (h logHandler) WithGroup(name string) slog.Handler {
	return logHandler{h.Handler.WithGroup(name)}
}
