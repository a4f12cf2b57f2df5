package worker

import (
	"context"
	"log/slog"
	"time"

	"github.com/visionmesh/vision/pkg/tracing"
)

// startTracing makes w trace its jobs when the OTEL_* environment asks for
// it, and returns the function that flushes the spans at exit. Call it
// before w.Start.
func startTracing(ctx context.Context, getenv func(string) string, w *Worker, log *slog.Logger) (stop func(), err error) {
	tr, err := tracing.FromEnv(ctx, "worker-"+w.cfg.Task, getenv)
	if err != nil || tr == nil {
		return func() {}, err
	}
	w.SetTracer(tr)
	log.Info("tracing on: spans go to the OTLP endpoint of OTEL_EXPORTER_OTLP_*")
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tr.Shutdown(sctx); err != nil {
			log.Warn("tracing shutdown", "err", err)
		}
	}, nil
}
