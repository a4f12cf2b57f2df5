package orchestrator

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/visionmesh/vision/pkg/discovery"
	"github.com/visionmesh/vision/pkg/metrics"
	"github.com/visionmesh/vision/pkg/tracing"
	"github.com/visionmesh/vision/pkg/web"
	"github.com/visionmesh/vision/pkg/worker"
)

// routes adds what the orchestrator serves beside the analysis API:
// GET /v1/workers (worker pools, from NATS service discovery), the web page
// at / (its assets under /web/) and GET /metrics (Prometheus). It returns
// the handler to serve: the API, instrumented and (when on) traced.
func (o *Orchestrator) routes() (http.Handler, error) {
	dc := discovery.Defaults(o.cfg.API.Tasks)
	dc.Prefix = o.cfg.Gather.Prefix
	d, err := discovery.New(o.nc, dc)
	if err != nil {
		return nil, err
	}
	o.api.HandleAPI("GET /v1/workers", discovery.Handler(d))
	page := web.Handler()
	for _, p := range web.Routes {
		o.api.Handle(p, page)
	}
	m := metrics.NewOrchestrator(o.nc, o.g)
	o.api.SetObserver(m)
	// Metrics are open like /healthz: they hold no secret, and Prometheus
	// scrapes without the API keys.
	o.api.Handle("GET /metrics", m.Handler())
	if o.cfg.Tracing != nil {
		o.g.SetTracer(o.cfg.Tracing)
	}
	// Tracing outermost: it names its span after the route the mux matched.
	return o.cfg.Tracing.Middleware(m.Instrument(o.api)), nil
}

// traceWorker traces a dev-mode worker's jobs when tracing is on.
func (o *Orchestrator) traceWorker(w *worker.Worker) {
	if o.cfg.Tracing != nil {
		w.SetTracer(o.cfg.Tracing)
	}
}

// setupTracing turns tracing on when the OTEL_* environment asks for it:
// it sets cfg.Tracing and returns a logger that adds the trace id to the
// lines logged with a request's context, and the function that flushes the
// spans at exit.
func setupTracing(ctx context.Context, cfg *Config, getenv func(string) string, log *slog.Logger) (*slog.Logger, func(), error) {
	tr, err := tracing.FromEnv(ctx, "orchestrator", getenv)
	if err != nil || tr == nil {
		return log, func() {}, err
	}
	cfg.Tracing = tr
	log = slog.New(tracing.LogHandler(log.Handler()))
	log.Info("tracing on: spans go to the OTLP endpoint of OTEL_EXPORTER_OTLP_*")
	return log, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tr.Shutdown(sctx); err != nil {
			log.Warn("tracing shutdown", "err", err)
		}
	}, nil
}
