package bench

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
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/visionmesh/vision/pkg/analyzer/simulate"
	"github.com/visionmesh/vision/pkg/api"
	"github.com/visionmesh/vision/pkg/embednats"
	"github.com/visionmesh/vision/pkg/logging"
	"github.com/visionmesh/vision/pkg/orchestrator"
	"github.com/visionmesh/vision/pkg/worker"
)

// ChildCommand is the first argument that makes the benchmark binary run a
// component instead of the benchmark: `bench child [-pprof addr] ROLE args...`.
// The command's main hands such calls to RunChild.
const ChildCommand = "child"

// roleFunc is a component's entry point, shaped like a binary's run.
type roleFunc func(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error

// Component roles. The orchestrator and the worker are the real binaries'
// Run functions, with the same flags.
const (
	roleNATS         = "nats"         // a NATS server: -port
	roleOrchestrator = "orchestrator" // orchestrator.Run
	roleWorker       = "worker"       // worker.Run
	roleTask         = "task"         // a baseline task service: -addr -task -work
	roleBaseline     = "baseline"     // the baseline's HTTP front: -addr -services
)

func roles() map[string]roleFunc {
	return map[string]roleFunc{
		roleNATS:         runNATS,
		roleOrchestrator: orchestrator.Run,
		roleWorker:       worker.Run,
		roleTask:         runTask,
		roleBaseline:     runBaseline,
	}
}

// RunChild runs one component until ctx ends (SIGTERM): args are
// [-pprof addr] ROLE [role flags...]. With -pprof the component also serves
// /debug/pprof on addr, so the benchmark can profile it under load.
func RunChild(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bench child", flag.ContinueOnError)
	pprofAddr := fs.String("pprof", "", "serve /debug/pprof on this address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("bench child: no role")
	}
	role, ok := roles()[fs.Arg(0)]
	if !ok {
		return fmt.Errorf("bench child: unknown role %q", fs.Arg(0))
	}
	if *pprofAddr != "" {
		stop, err := servePprof(*pprofAddr)
		if err != nil {
			return err
		}
		defer stop()
	}
	return role(ctx, fs.Args()[1:], getenv, stdout)
}

// servePprof serves the runtime profiles on addr.
func servePprof(addr string) (stop func(), err error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pprof: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return func() { _ = srv.Close() }, nil
}

// runNATS runs a NATS server on 127.0.0.1 until ctx ends.
func runNATS(ctx context.Context, args []string, _ func(string) string, _ io.Writer) error {
	fs := flag.NewFlagSet("nats", flag.ContinueOnError)
	port := fs.Int("port", -1, "port (-1: any)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ns, err := embednats.Start(embednats.Options{Port: *port, Name: "bench"})
	if err != nil {
		return err
	}
	<-ctx.Done()
	ns.Shutdown()
	ns.WaitForShutdown()
	return nil
}

// serveUntil serves h on addr until ctx ends, then shuts down gracefully.
func serveUntil(ctx context.Context, addr string, h http.Handler, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	// The orchestrator's server settings, so both fronts are alike.
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      3*time.Minute + 35*time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}

// runTask runs a baseline task service.
func runTask(ctx context.Context, args []string, _ func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("task", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	task := fs.String("task", "", "task name")
	work := fs.Duration("work", 0, "simulated work per job")
	level := fs.String("log-level", "warn", "log level")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := logging.New(stdout, "text", *level)
	if err != nil {
		return err
	}
	a, err := simulate.New(simulate.Config{Work: *work})
	if err != nil {
		return err
	}
	return serveUntil(ctx, *addr, NewTaskService(*task, *task+"@"+*addr, a, log), log)
}

// runBaseline runs the baseline's HTTP front; -services lists
// task=url pairs, comma-separated, in task order.
func runBaseline(ctx context.Context, args []string, _ func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("baseline", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address")
	services := fs.String("services", "", "task=url,... in task order")
	level := fs.String("log-level", "warn", "log level")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := logging.New(stdout, "text", *level)
	if err != nil {
		return err
	}
	cfg := api.Defaults()
	cfg.Tasks = nil
	urls := map[string]string{}
	for _, kv := range strings.Split(*services, ",") {
		task, url, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("baseline: -services: %q is not task=url", kv)
		}
		cfg.Tasks = append(cfg.Tasks, task)
		urls[task] = url
	}
	s, g, err := NewBaseline(cfg, urls, log)
	if err != nil {
		return err
	}
	defer g.Close()
	return serveUntil(ctx, *addr, s, log)
}

// proc is one running component, in this process or a child process.
type proc struct {
	name  string // e.g. "worker-plate-2"
	group string // CPU accounting group: nats, orchestrator, workers, baseline, tasks
	pid   int    // 0 when in this process
	pprof string // address of its /debug/pprof, if any
	log   string // path of its log

	done chan struct{} // closed when it has exited
	err  error         // why it exited, once done is closed
	term func()        // asks it to stop
	kill func()        // makes it stop
}

// exited reports whether p has stopped.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// launcher starts components: as child processes of exe when exe is set,
// else as goroutines of this process.
type launcher struct {
	exe      string
	dir      string
	profile  bool // give child processes a pprof address
	mu       sync.Mutex
	launched int
}

func (l *launcher) start(name, group, role string, args ...string) (*proc, error) {
	l.mu.Lock()
	l.launched++
	n := l.launched
	l.mu.Unlock()
	logPath := fmt.Sprintf("%s/%02d-%s.log", l.dir, n, name)
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	p := &proc{name: name, group: group, log: logPath, done: make(chan struct{})}
	if l.exe == "" {
		fn := roles()[role]
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			defer close(p.done)
			defer logf.Close()
			p.err = fn(ctx, args, func(string) string { return "" }, logf)
		}()
		p.term, p.kill = cancel, cancel
		return p, nil
	}
	cargs := []string{ChildCommand}
	if l.profile {
		addr, err := freeAddr()
		if err != nil {
			logf.Close()
			return nil, err
		}
		p.pprof = addr
		cargs = append(cargs, "-pprof", addr)
	}
	cmd := exec.Command(l.exe, append(append(cargs, role), args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p.pid = cmd.Process.Pid
	go func() {
		defer close(p.done)
		defer logf.Close()
		p.err = cmd.Wait()
	}()
	p.term = func() { _ = cmd.Process.Signal(syscall.SIGTERM) }
	p.kill = func() { _ = cmd.Process.Kill() }
	return p, nil
}

// stopAll asks ps to stop and waits for them, killing those still running
// after timeout. It returns the errors of those that did not exit cleanly.
func stopAll(ps []*proc, timeout time.Duration) error {
	for _, p := range ps {
		p.term()
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var errs []error
	for _, p := range ps {
		select {
		case <-p.done:
		case <-deadline.C:
			for _, q := range ps {
				q.kill()
			}
			<-p.done
		}
		if p.err != nil && !errors.Is(p.err, context.Canceled) {
			errs = append(errs, fmt.Errorf("%s: %w (log: %s)", p.name, p.err, p.log))
		}
	}
	return errors.Join(errs...)
}

// freeAddr returns a loopback address with a port that was free a moment
// ago: components listen on it themselves, so their address is known
// before they start.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
