// Package orchestrator wires the orchestrator process together: a NATS
// connection, the gatherer, the HTTP API and, in dev mode, an embedded NATS
// server with one replica of every task's worker. Run is the binary; Start
// and Shutdown let tests drive the same code in process.
package orchestrator

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/visionmesh/vision/pkg/api"
	"github.com/visionmesh/vision/pkg/catalog"
	"github.com/visionmesh/vision/pkg/claimcheck"
	"github.com/visionmesh/vision/pkg/embednats"
	"github.com/visionmesh/vision/pkg/gather"
	"github.com/visionmesh/vision/pkg/jobs"
	"github.com/visionmesh/vision/pkg/logging"
	"github.com/visionmesh/vision/pkg/natsconn"
	"github.com/visionmesh/vision/pkg/worker"
)

// Orchestrator is a running orchestrator.
type Orchestrator struct {
	cfg  Config
	log  *slog.Logger
	ln   net.Listener
	srv  *http.Server
	nc   *nats.Conn
	g    *gather.Gatherer
	api  *api.Server
	proc *jobs.Processor // -jobs
	prof *http.Server    // -pprof
	ns   *server.Server  // dev mode
	devs []devWorker     // dev mode
	serr chan error
}

type devWorker struct {
	w  *worker.Worker
	nc *nats.Conn
}

// Run is the orchestrator binary: it serves until ctx ends, then shuts down
// in order (stop HTTP intake, finish requests, drain NATS).
func Run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := ParseFlags(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log, err := logging.New(stdout, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return err
	}
	log, stopTracing, err := setupTracing(ctx, &cfg, getenv, log)
	if err != nil {
		return err
	}
	defer stopTracing()
	o, err := Start(cfg, log)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case err := <-o.serr:
		log.Error("http server stopped", "err", err)
	}
	log.Info("orchestrator shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	return o.Shutdown(sctx)
}

// Start starts an orchestrator for cfg: it listens before returning, so
// Addr is known and requests can be sent at once.
func Start(cfg Config, log *slog.Logger) (_ *Orchestrator, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := &Orchestrator{cfg: cfg, log: log, serr: make(chan error, 1)}
	defer func() {
		if err != nil {
			o.closeAll()
		}
	}()
	if cfg.Dev {
		if err := o.startDev(); err != nil {
			return nil, err
		}
	}
	cfg = o.cfg // dev mode points it at the embedded server
	log.Info("orchestrator starting", "nats", cfg.NATS, "tasks", cfg.API.Tasks, "dev", cfg.Dev)
	o.nc, err = cfg.NATS.Connect(log, nil,
		nats.CustomInboxPrefix(cfg.Gather.InboxPrefix),
		// While disconnected, publishing fails at once instead of
		// buffering: a job then fails fast with 503, never hangs.
		nats.ReconnectBufSize(-1),
	)
	if err != nil {
		return nil, err
	}
	inline := cfg.API.MaxBytes // largest image sent inside a task message
	if cfg.ClaimCheck.Enabled() {
		inline = min(inline, cfg.ClaimCheck.Threshold)
	}
	if mp := o.nc.MaxPayload(); mp > 0 && inline+16<<10 > mp {
		log.Warn("images sent inline may exceed the NATS max_payload and fail: lower -max-bytes or -claim-check-bytes",
			"max_bytes", cfg.API.MaxBytes, "claim_check_bytes", cfg.ClaimCheck.Threshold, "max_payload", mp)
	}
	o.g, err = gather.New(o.nc, cfg.Gather)
	if err != nil {
		return nil, err
	}
	o.api, err = api.New(cfg.API, o.g, o.nc, log)
	if err != nil {
		return nil, err
	}
	var images *claimcheck.Store
	if cfg.ClaimCheck.Enabled() {
		if images, err = claimcheck.New(o.nc, cfg.ClaimCheck); err != nil {
			return nil, err
		}
		// Should the object store fail, an image that still fits in a
		// message goes inline: 64 KiB under max_payload leaves the headers room.
		fits := api.Defaults().MaxBytes
		if mp := o.nc.MaxPayload(); mp > 64<<10 {
			fits = mp - 64<<10
		}
		o.api.EnableClaims(images, fits)
	}
	if cfg.Jobs {
		st, err := jobs.New(o.nc, cfg.JobsConfig)
		if err != nil {
			return nil, err
		}
		if images != nil {
			st.SetImages(images)
		}
		o.api.EnableJobs(st)
		o.proc = st.Process(o.g, log)
	}
	handler, err := o.routes()
	if err != nil {
		return nil, err
	}
	o.ln, err = net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	o.srv = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		// A serial job may take every task's timeout in turn.
		WriteTimeout:   cfg.ReadTimeout + time.Duration(len(cfg.API.Tasks))*cfg.API.MaxTimeout + 5*time.Second,
		IdleTimeout:    cfg.IdleTimeout,
		MaxHeaderBytes: cfg.MaxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := o.srv.Serve(o.ln); !errors.Is(err, http.ErrServerClosed) {
			o.serr <- err
		}
	}()
	if cfg.PprofAddr != "" {
		if err := o.startPprof(); err != nil {
			return nil, err
		}
	}
	log.Info("orchestrator listening", "addr", o.ln.Addr().String(), "url", "http://"+o.ln.Addr().String())
	return o, nil
}

// Addr is the address the HTTP server listens on.
func (o *Orchestrator) Addr() string { return o.ln.Addr().String() }

// NATSURL is the URL of the NATS server in use (the embedded one in dev mode).
func (o *Orchestrator) NATSURL() string {
	if o.ns != nil {
		return o.ns.ClientURL()
	}
	return o.cfg.NATS.URL
}

// Handle adds a route to the HTTP server (web page, metrics).
func (o *Orchestrator) Handle(pattern string, h http.Handler) { o.api.Handle(pattern, h) }

// Gatherer exposes the gatherer (tests check it leaks nothing).
func (o *Orchestrator) Gatherer() *gather.Gatherer { return o.g }

// Shutdown stops intake, lets requests in flight finish (until ctx ends),
// drains the NATS connection and, in dev mode, the workers and the server.
func (o *Orchestrator) Shutdown(ctx context.Context) error {
	var errs []error
	if err := o.srv.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("http shutdown: %w", err))
	}
	if o.prof != nil {
		_ = o.prof.Close()
	}
	if o.proc != nil {
		if err := o.proc.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := o.g.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := natsconn.Drain(ctx, o.nc); err != nil {
		errs = append(errs, err)
	}
	for _, d := range o.devs {
		if err := worker.Drain(ctx, d.w, d.nc); err != nil {
			errs = append(errs, err)
		}
	}
	o.devs = nil
	if o.ns != nil {
		o.ns.Shutdown()
		o.ns.WaitForShutdown()
	}
	return errors.Join(errs...)
}

// closeAll releases what a failed Start had opened.
func (o *Orchestrator) closeAll() {
	if o.ln != nil {
		o.ln.Close()
	}
	if o.proc != nil {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = o.proc.Shutdown(ctx)
	}
	if o.nc != nil {
		o.nc.Close()
	}
	for _, d := range o.devs {
		d.nc.Close()
	}
	if o.ns != nil {
		o.ns.Shutdown()
	}
}

// startDev starts the embedded NATS server and a worker per task, and points
// the orchestrator's NATS settings at that server.
func (o *Orchestrator) startDev() error {
	eo := embednats.Options{Port: o.cfg.DevNATSPort, Name: "vision-dev"}
	if o.cfg.Jobs {
		eo.Tweak = func(opts *server.Options) {
			opts.JetStream = true
			opts.StoreDir = o.cfg.DevStore
		}
	}
	ns, err := embednats.Start(eo)
	if err != nil {
		return fmt.Errorf("dev mode: %w (is another NATS on port %d? try -dev-nats-port=-1)", err, o.cfg.DevNATSPort)
	}
	o.ns = ns
	o.cfg.NATS.URL = ns.ClientURL()
	o.log.Info("dev mode: embedded NATS running", "url", ns.ClientURL())
	for _, task := range o.cfg.API.Tasks {
		kind := o.cfg.DevKind
		if kind == "" {
			kind = o.cfg.DevAnalyzers.DefaultKind(task)
		}
		a, err := catalog.New(kind, task, o.cfg.DevAnalyzers)
		if err != nil {
			return fmt.Errorf("dev mode: %w", err)
		}
		wc := worker.Defaults(task)
		wc.Prefix, wc.Kind, wc.Concurrency = o.cfg.Gather.Prefix, kind, o.cfg.DevConcurrency
		ncfg := o.cfg.NATS
		ncfg.Name = "dev-worker-" + task
		nc, err := ncfg.Connect(o.log, nil)
		if err != nil {
			return err
		}
		w, err := worker.New(nc, a, wc, o.log)
		if err == nil {
			o.traceWorker(w)
			err = w.Start()
		}
		if err != nil {
			nc.Close()
			return fmt.Errorf("dev mode: %w", err)
		}
		o.devs = append(o.devs, devWorker{w: w, nc: nc})
	}
	return nil
}

// startPprof serves the runtime profiles on their own listener, so they are
// never exposed on the public address.
func (o *Orchestrator) startPprof() error {
	ln, err := net.Listen("tcp", o.cfg.PprofAddr)
	if err != nil {
		return fmt.Errorf("pprof listen %s: %w", o.cfg.PprofAddr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	o.prof = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = o.prof.Serve(ln) }()
	o.log.Info("pprof listening", "addr", ln.Addr().String())
	return nil
}
