package worker

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/visionmesh/vision/pkg/catalog"
	"github.com/visionmesh/vision/pkg/logging"
	"github.com/visionmesh/vision/pkg/natsconn"
)

// ProcessConfig is everything the worker binary is configured with.
type ProcessConfig struct {
	Worker          Config
	NATS            natsconn.Config
	Analyzers       catalog.Options
	ShutdownTimeout time.Duration
	LogFormat       string
	LogLevel        string
	// MetricsAddr, when set, serves Prometheus metrics at /metrics there.
	MetricsAddr string
	// InboxPrefix is where JetStream API replies and object chunks arrive
	// when the worker fetches a claim-checked image (nats.conf allows each
	// worker user only its own: _INBOX.worker-<task>).
	InboxPrefix string
}

// InboxPrefix is a task's workers' default NATS inbox prefix.
func InboxPrefix(task string) string { return "_INBOX.worker-" + task }

// ParseFlags reads the worker binary's flags; environment variables (read
// through getenv) give defaults that flags override.
func ParseFlags(args []string, getenv func(string) string) (ProcessConfig, error) {
	c := ProcessConfig{Worker: Defaults("")}
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.StringVar(&c.Worker.Task, "task", getenv("TASK"), "task this replica serves: vehicle, plate, face, ... (env TASK)")
	fs.StringVar(&c.Worker.Prefix, "prefix", envOr(getenv, "VISION_PREFIX", c.Worker.Prefix), "subject prefix (env VISION_PREFIX)")
	fs.StringVar(&c.Worker.Kind, "analyzer", getenv("ANALYZER"), fmt.Sprintf("analyzer kind %v (env ANALYZER; default: the task's real analyzer when its models are installed, else simulate)", catalog.Kinds()))
	fs.IntVar(&c.Worker.Concurrency, "concurrency", c.Worker.Concurrency, "jobs run at once by this replica")
	fs.IntVar(&c.Worker.MaxQueue, "max-queue", c.Worker.MaxQueue, "jobs that may wait for a slot; more are refused (503) and go to another replica")
	fs.Int64Var(&c.Worker.MaxPendingBytes, "max-pending-bytes", c.Worker.MaxPendingBytes, "image bytes held by waiting and running jobs; more are refused (503)")
	fs.Int64Var(&c.Worker.MaxPixels, "max-pixels", c.Worker.MaxPixels, "refuse images whose header declares more pixels (code 422)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long SIGTERM waits for running jobs")
	fs.StringVar(&c.LogFormat, "log-format", envOr(getenv, "LOG_FORMAT", "text"), "log format: text or json (env LOG_FORMAT)")
	fs.StringVar(&c.LogLevel, "log-level", envOr(getenv, "LOG_LEVEL", "info"), "log level: debug, info, warn, error (env LOG_LEVEL)")
	fs.StringVar(&c.InboxPrefix, "inbox-prefix", getenv("INBOX_PREFIX"), "NATS inbox prefix for fetching claim-checked images (env INBOX_PREFIX; default _INBOX.worker-<task>)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", getenv("METRICS_ADDR"), "serve Prometheus metrics at http://<addr>/metrics, e.g. :9100 (env METRICS_ADDR; empty: off)")
	c.NATS.RegisterFlags(fs, getenv)
	c.Analyzers.RegisterFlags(fs, getenv)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.Worker.Task == "" {
		return c, errors.New("worker: -task is required")
	}
	c.Analyzers.MaxPixels = int(c.Worker.MaxPixels)
	if c.Worker.Kind == "" {
		c.Worker.Kind = c.Analyzers.DefaultKind(c.Worker.Task)
	}
	if c.NATS.Name == "" {
		c.NATS.Name = "worker-" + c.Worker.Task
	}
	if c.InboxPrefix == "" {
		c.InboxPrefix = InboxPrefix(c.Worker.Task)
	}
	return c, c.Worker.Validate()
}

func envOr(getenv func(string) string, k, def string) string {
	if v := getenv(k); v != "" {
		return v
	}
	return def
}

// gcPercent is the worker's GC target when GOGC is not set: it halves the
// cost of a 2 MB image (README, Performance). Memory stays bounded by
// -max-pending-bytes, which caps the image bytes a replica holds.
const gcPercent = 400

// Run is the worker binary: it serves one task until ctx ends (SIGTERM),
// then drains: no new jobs, running jobs finish and reply, exit.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	c, err := ParseFlags(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log, err := logging.New(stdout, c.LogFormat, c.LogLevel)
	if err != nil {
		return err
	}
	if getenv("GOGC") == "" {
		// Every job arrives in a fresh buffer (nats.go allocates one per
		// message) and the live heap is small, so the default GC target
		// collects after every large image or two. GOGC overrides it.
		debug.SetGCPercent(gcPercent)
	}
	a, err := catalog.New(c.Worker.Kind, c.Worker.Task, c.Analyzers)
	if err != nil {
		return err
	}
	log.Info("worker starting", "task", c.Worker.Task, "analyzer", c.Worker.Kind, "nats", c.NATS)
	nc, err := c.NATS.Connect(log, nil, nats.CustomInboxPrefix(c.InboxPrefix))
	if err != nil {
		return err
	}
	w, err := New(nc, a, c.Worker, log)
	if err != nil {
		nc.Close()
		return err
	}
	stopMetrics, err := startMetrics(c.MetricsAddr, w, nc, log)
	if err != nil {
		nc.Close()
		return err
	}
	defer stopMetrics()
	stopTracing, err := startTracing(ctx, getenv, w, log)
	if err != nil {
		nc.Close()
		return err
	}
	defer stopTracing()
	if err := w.Start(); err != nil {
		nc.Close()
		return err
	}
	<-ctx.Done()
	log.Info("worker draining", "in_flight", w.Stats().InFlight)
	sctx, cancel := context.WithTimeout(context.Background(), c.ShutdownTimeout)
	defer cancel()
	return Drain(sctx, w, nc)
}

// Drain shuts w down and then drains and closes nc, waiting until it is
// closed or ctx ends.
func Drain(ctx context.Context, w *Worker, nc *nats.Conn) error {
	werr := w.Shutdown(ctx)
	if err := natsconn.Drain(ctx, nc); err != nil {
		return errors.Join(werr, err)
	}
	if werr == nil {
		s := w.Stats()
		w.log.Info("worker stopped", "done", s.Done, "failed", s.Failed)
	}
	return werr
}
