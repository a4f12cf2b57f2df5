package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/visionmesh/vision/pkg/metrics"
)

// startMetrics makes w report to Prometheus metrics served at
// http://addr/metrics (the -metrics-addr flag) and returns the function
// that stops serving them. With an empty addr it does nothing. Call it
// before w.Start, so that every job is observed.
func startMetrics(addr string, w *Worker, nc *nats.Conn, log *slog.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	m := metrics.NewWorker(w.cfg.Task, func() metrics.JobCounters {
		s := w.Stats()
		return metrics.JobCounters{
			Concurrency: s.Concurrency, InFlight: s.InFlight, Queued: s.Queued,
			Done: s.Done, Failed: s.Failed, Refused: s.Refused, Expired: s.Expired,
		}
	}, nc)
	w.SetObserver(m)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	log.Info("metrics listening", "addr", ln.Addr().String(), "url", "http://"+ln.Addr().String()+"/metrics")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
