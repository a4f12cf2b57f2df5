package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/visionmesh/vision/pkg/testimage"
)

// Options configure a Runner.
type Options struct {
	// Exe, when set, is the benchmark executable: components run as its
	// child processes (`Exe child ROLE ...`, see RunChild). Empty runs every
	// component inside this process, which is quicker to start but shares
	// one runtime, and gives no per-component CPU or memory figures.
	Exe string
	// Dir receives the components' logs and any profiles. Empty: a
	// temporary directory, removed by Close when every run went well.
	Dir string
	// LogLevel is the components' log level (default "warn": a log line per
	// request would be part of what is measured).
	LogLevel string
	// Profile, when set, selects scenarios by name to profile: CPU profiles
	// of the front, the NATS server and one replica per task over the
	// measured window, and a heap profile of the front at its end, written
	// to Dir. Needs Exe.
	Profile *regexp.Regexp
	// Progress, when set, gets a line per scenario as it ends.
	Progress io.Writer
}

// Runner starts the systems scenarios need and measures the scenarios.
type Runner struct {
	opts   Options
	tmpDir bool
	l      *launcher
	failed bool

	topo  *Topology // what is running
	procs []*proc
	mon   *nats.Conn // the benchmark's own connection, for discovery
	sys   string     // orchestrator base URL
	base  string     // baseline front base URL
}

// NewRunner returns a Runner; Close stops whatever it started.
func NewRunner(opts Options) (*Runner, error) {
	if opts.LogLevel == "" {
		opts.LogLevel = "warn"
	}
	if opts.Profile != nil && opts.Exe == "" {
		return nil, errors.New("bench: profiles need components in child processes")
	}
	r := &Runner{opts: opts}
	if opts.Dir == "" {
		d, err := os.MkdirTemp("", "vision-bench-")
		if err != nil {
			return nil, err
		}
		r.opts.Dir, r.tmpDir = d, true
	} else if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, err
	}
	r.l = &launcher{exe: opts.Exe, dir: r.opts.Dir, profile: opts.Profile != nil}
	return r, nil
}

// Dir is where the components' logs go.
func (r *Runner) Dir() string { return r.opts.Dir }

// Close stops the running system. It removes the temporary log directory
// unless something failed, so the logs are there to read.
func (r *Runner) Close() error {
	err := r.stop()
	if r.tmpDir && !r.failed && err == nil {
		_ = os.RemoveAll(r.opts.Dir)
	}
	return err
}

// Run measures every scenario in order, starting and stopping systems as
// their topologies require, and returns a Result per scenario name: the
// rounds of a scenario are pooled (all their requests, all their time). It
// stops at the first scenario that cannot run (a system that does not
// start) and returns the results so far.
func (r *Runner) Run(ctx context.Context, scenarios []Scenario) ([]Result, error) {
	var (
		order []Scenario
		acc   = map[string]*measurement{}
		err   error
	)
	for _, s := range scenarios {
		var m measurement
		m, err = r.measure(ctx, s)
		if err != nil {
			r.failed = true
			err = fmt.Errorf("%s: %w", s.Name, err)
			break
		}
		if r.opts.Progress != nil {
			line := progressLine(r.result(s, &m))
			if s.Rounds > 1 {
				line += fmt.Sprintf("  (round %d/%d)", s.Round, s.Rounds)
			}
			fmt.Fprintln(r.opts.Progress, line)
		}
		if a, ok := acc[s.Name]; ok {
			a.add(&m)
			continue
		}
		order = append(order, s)
		acc[s.Name] = &m
	}
	out := make([]Result, 0, len(order))
	for _, s := range order {
		res := r.result(s, acc[s.Name])
		if res.Errors > 0 {
			r.failed = true
		}
		out = append(out, res)
	}
	return out, err
}

// RunScenario measures one scenario.
func (r *Runner) RunScenario(ctx context.Context, s Scenario) (Result, error) {
	m, err := r.measure(ctx, s)
	if err != nil {
		return Result{}, err
	}
	return r.result(s, &m), nil
}

// measurement is what one run of a scenario gathered.
type measurement struct {
	sample     Sample
	meter      meter
	imageBytes int
}

// add pools o into m.
func (m *measurement) add(o *measurement) {
	m.sample.Latencies = append(m.sample.Latencies, o.sample.Latencies...)
	m.sample.OK += o.sample.OK
	m.sample.Errors += o.sample.Errors
	if m.sample.FirstError == "" {
		m.sample.FirstError = o.sample.FirstError
	}
	m.sample.Elapsed += o.sample.Elapsed
	for g, t := range o.meter.ticks {
		m.meter.ticks[g] += t
	}
	m.meter.othersBusy += o.meter.othersBusy
	m.meter.total += o.meter.total
	m.meter.frontPeak = max(m.meter.frontPeak, o.meter.frontPeak)
}

func (r *Runner) measure(ctx context.Context, s Scenario) (measurement, error) {
	if err := r.ensure(ctx, s.Topology); err != nil {
		return measurement{}, err
	}
	body := testimage.JPEGOfSize(s.ImageSize, 1)
	url := r.URL(s.System)
	if url == "" {
		return measurement{}, fmt.Errorf("system %q is not running (the baseline needs Topology.Baseline)", s.System)
	}
	front := r.find(func(p *proc) bool {
		return p.group == groupOrchestrator && s.System != Baseline || p.group == groupBaseline && s.System == Baseline
	})

	m := measurement{imageBytes: len(body)}
	profiles := r.profiler(s, front)
	load := Load{
		URL:         url,
		Body:        body,
		ContentType: "image/jpeg",
		Clients:     s.Clients,
		Warmup:      s.Warmup,
		Duration:    s.Duration,
		Requests:    s.Requests,
		Rate:        s.Rate,
		OnStart: func() {
			m.meter.start(r.procs, front)
			profiles.start()
		},
		OnStop: func() {
			m.meter.stop(r.procs, front)
			profiles.heap()
		},
	}
	var err error
	m.sample, err = load.Run(ctx)
	profiles.wait()
	return m, err
}

// result turns what was measured of s into a Result.
func (r *Runner) result(s Scenario, ms *measurement) Result {
	sample, m := &ms.sample, &ms.meter
	work := s.Topology.Work
	res := Result{
		Scenario:          s,
		ImageBytes:        ms.imageBytes,
		WorkMS:            msec(work),
		Replicas:          s.Topology.Replicas,
		WorkerConcurrency: s.Topology.WorkerConcurrency,
		OK:                sample.OK,
		Errors:            sample.Errors,
		ErrorSample:       sample.FirstError,
		ElapsedS:          sample.Elapsed.Seconds(),
	}
	if sample.Elapsed > 0 {
		res.RPS = float64(sample.OK) / sample.Elapsed.Seconds()
	}
	lat := slices.Clone(sample.Latencies)
	over := make([]time.Duration, len(lat))
	for i, d := range lat {
		over[i] = d - work
	}
	res.Latency = Summarize(lat)
	res.Overhead = Summarize(over)
	if m.frontPeak > 0 {
		res.FrontRSSMB = math.Round(float64(m.frontPeak)/(1<<20)*10) / 10
	}
	if sample.OK > 0 {
		serving := map[string]bool{groupOrchestrator: true, groupNATS: true, groupWorkers: true}
		if s.System == Baseline {
			serving = map[string]bool{groupBaseline: true, groupTasks: true}
		}
		res.CPUPerReq = map[string]float64{}
		for g, t := range m.ticks {
			us := math.Round(float64(t) * 1e6 / clockTick / float64(sample.OK))
			switch {
			case r.opts.Exe == "":
				res.CPUPerReq["process"] = us // every component, and the client
			case g == groupClient || serving[g]:
				res.CPUPerReq[g] = us
			}
			if serving[g] {
				res.ServerCPUPerReq += us
			}
		}
	}
	if m.total > 0 {
		res.OthersBusy = math.Round(float64(max(m.othersBusy, 0))/float64(m.total)*1000) / 1000
	}
	return res
}

// CPU accounting groups.
const (
	groupClient       = "client" // this process: the load generator (everything, in process)
	groupNATS         = "nats"
	groupOrchestrator = "orchestrator"
	groupWorkers      = "workers"
	groupBaseline     = "baseline"
	groupTasks        = "tasks"
)

// meter reads CPU and memory counters as the measured window opens and
// closes.
type meter struct {
	startTicks map[*proc]int64
	selfStart  int64
	busy0, tot int64

	ticks      map[string]int64 // per group, over the window
	othersBusy int64
	total      int64
	frontPeak  int64
}

func (m *meter) start(ps []*proc, front *proc) {
	m.startTicks = map[*proc]int64{}
	for _, p := range ps {
		if p.pid != 0 {
			m.startTicks[p] = cpuTicks(p.pid)
		}
	}
	m.selfStart = cpuTicks(0)
	m.busy0, m.tot = machineTicks()
	if front != nil && front.pid != 0 {
		_ = resetPeakRSS(front.pid)
	}
}

func (m *meter) stop(ps []*proc, front *proc) {
	m.ticks = map[string]int64{groupClient: cpuTicks(0) - m.selfStart}
	ours := m.ticks[groupClient]
	for p, t0 := range m.startTicks {
		d := cpuTicks(p.pid) - t0
		m.ticks[p.group] += d
		ours += d
	}
	busy, total := machineTicks()
	m.total = total - m.tot
	m.othersBusy = busy - m.busy0 - ours
	if front != nil && front.pid != 0 {
		m.frontPeak = peakRSS(front.pid)
	}
}

// profiler fetches profiles of a scenario from components' pprof servers.
type profiler struct {
	r     *Runner
	s     Scenario
	front *proc
	ps    []*proc
	wg    sync.WaitGroup
}

// profiler returns the profiler of s: a no-op unless s is to be profiled.
func (r *Runner) profiler(s Scenario, front *proc) *profiler {
	pr := &profiler{r: r, s: s, front: front}
	if r.opts.Profile == nil || !r.opts.Profile.MatchString(s.Name) || s.Requests > 0 {
		return pr
	}
	seen := map[string]bool{}
	for _, p := range r.procs {
		if p.pprof == "" {
			continue
		}
		switch {
		case p == front, p.group == groupNATS && s.System != Baseline:
		case (p.group == groupWorkers && s.System != Baseline || p.group == groupTasks && s.System == Baseline) && !seen[taskOf(p.name)]:
			seen[taskOf(p.name)] = true
		default:
			continue
		}
		pr.ps = append(pr.ps, p)
	}
	return pr
}

func (pr *profiler) start() {
	secs := int(math.Ceil(pr.s.Duration.Seconds()))
	for _, p := range pr.ps {
		pr.wg.Go(func() {
			pr.fetch(p, fmt.Sprintf("profile?seconds=%d", secs), "cpu")
		})
	}
}

func (pr *profiler) heap() {
	for _, p := range pr.ps {
		if p == pr.front {
			pr.wg.Go(func() { pr.fetch(p, "heap?gc=0", "heap") })
		}
	}
}

func (pr *profiler) wait() { pr.wg.Wait() }

func (pr *profiler) fetch(p *proc, path, kind string) {
	name := strings.NewReplacer("/", "-").Replace(pr.s.Name)
	file := filepath.Join(pr.r.opts.Dir, fmt.Sprintf("%s.%s.%s.pprof", name, p.name, kind))
	resp, err := http.Get("http://" + p.pprof + "/debug/pprof/" + path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: profile %s: %v\n", p.name, err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = io.Copy(f, resp.Body)
}

// taskOf returns the task of a component named worker-<task>-<n> or
// task-<task>.
func taskOf(name string) string {
	parts := strings.Split(name, "-")
	if len(parts) >= 2 {
		return parts[1]
	}
	return name
}

func (r *Runner) find(match func(*proc) bool) *proc {
	for _, p := range r.procs {
		if match(p) {
			return p
		}
	}
	return nil
}

// Start makes t the running topology, restarting the system if another one
// runs, and returns once every component answers.
func (r *Runner) Start(ctx context.Context, t Topology) error { return r.ensure(ctx, t) }

// URL is where sys takes POST requests in the running system (with its
// query), or "" if it does not run.
func (r *Runner) URL(sys System) string {
	switch {
	case sys == Concurrent && r.sys != "":
		return r.sys + "/v1/analyze"
	case sys == Serial && r.sys != "":
		return r.sys + "/v1/analyze?mode=serial"
	case sys == Baseline && r.base != "":
		return r.base + "/v1/analyze"
	}
	return ""
}

// ensure makes t the running topology, restarting the system if another
// one runs.
func (r *Runner) ensure(ctx context.Context, t Topology) error {
	if r.topo != nil && *r.topo == t {
		return nil
	}
	if err := r.stop(); err != nil {
		return err
	}
	if err := r.startSystem(ctx, t); err != nil {
		r.failed = true
		_ = r.stop()
		return fmt.Errorf("start system (logs in %s): %w", r.opts.Dir, err)
	}
	r.topo = &t
	return nil
}

// stop stops every component: fronts first, then the tasks, then NATS.
func (r *Runner) stop() error {
	if r.mon != nil {
		r.mon.Close()
		r.mon = nil
	}
	var errs []error
	for _, groups := range [][]string{{groupOrchestrator, groupBaseline}, {groupWorkers, groupTasks}, {groupNATS}} {
		var ps []*proc
		for _, p := range r.procs {
			for _, g := range groups {
				if p.group == g {
					ps = append(ps, p)
				}
			}
		}
		if err := stopAll(ps, 15*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	r.procs, r.topo, r.sys, r.base = nil, nil, "", ""
	return errors.Join(errs...)
}

func (r *Runner) launch(name, group, role string, args ...string) error {
	p, err := r.l.start(name, group, role, args...)
	if err != nil {
		return err
	}
	r.procs = append(r.procs, p)
	return nil
}

// startSystem starts NATS, the workers and the orchestrator and, when asked,
// the baseline, and waits until each answers a probe job.
func (r *Runner) startSystem(ctx context.Context, t Topology) error {
	lv := "-log-level=" + r.opts.LogLevel
	natsAddr, err := freeAddr()
	if err != nil {
		return err
	}
	_, port, _ := net.SplitHostPort(natsAddr)
	natsURL := "nats://" + natsAddr
	if err := r.launch("nats", groupNATS, roleNATS, "-port="+port); err != nil {
		return err
	}
	if err := r.waitFor(ctx, "nats", func() error {
		c, err := net.DialTimeout("tcp", natsAddr, time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}); err != nil {
		return err
	}
	if r.mon, err = nats.Connect(natsURL, nats.Name("bench")); err != nil {
		return err
	}
	for _, task := range Tasks {
		for i := 1; i <= t.Replicas; i++ {
			err := r.launch(fmt.Sprintf("worker-%s-%d", task, i), groupWorkers, roleWorker,
				"-nats="+natsURL, "-task="+task, "-analyzer=simulate", "-work="+t.Work.String(),
				fmt.Sprintf("-concurrency=%d", t.WorkerConcurrency), lv)
			if err != nil {
				return err
			}
		}
	}
	sysAddr, err := freeAddr()
	if err != nil {
		return err
	}
	if err := r.launch("orchestrator", groupOrchestrator, roleOrchestrator,
		"-addr="+sysAddr, "-nats="+natsURL, "-tasks="+strings.Join(Tasks, ","), lv); err != nil {
		return err
	}
	r.sys = "http://" + sysAddr

	if t.Baseline {
		var services []string
		for _, task := range Tasks {
			addr, err := freeAddr()
			if err != nil {
				return err
			}
			if err := r.launch("task-"+task, groupTasks, roleTask,
				"-addr="+addr, "-task="+task, "-work="+t.Work.String(), lv); err != nil {
				return err
			}
			services = append(services, task+"=http://"+addr+"/")
		}
		baseAddr, err := freeAddr()
		if err != nil {
			return err
		}
		if err := r.launch("baseline", groupBaseline, roleBaseline,
			"-addr="+baseAddr, "-services="+strings.Join(services, ","), lv); err != nil {
			return err
		}
		r.base = "http://" + baseAddr
	}

	for _, task := range Tasks {
		if err := r.waitFor(ctx, "workers of "+task, func() error {
			if n := r.responders("$SRV.PING." + task); n != t.Replicas {
				return fmt.Errorf("%d of %d replicas answer", n, t.Replicas)
			}
			return nil
		}); err != nil {
			return err
		}
	}
	probe := testimage.JPEGOfSize(2000, 1)
	fronts := map[string]string{"orchestrator": r.sys}
	if t.Baseline {
		fronts["baseline"] = r.base
	}
	for name, base := range fronts {
		if err := r.waitFor(ctx, name, func() error {
			return Load{URL: base + "/v1/analyze", Body: probe, ContentType: "image/jpeg"}.
				do(ctx, http.DefaultClient)
		}); err != nil {
			return err
		}
	}
	return nil
}

// responders counts the answers to a request on subj within a short wait.
func (r *Runner) responders(subj string) int {
	inbox := nats.NewInbox()
	sub, err := r.mon.SubscribeSync(inbox)
	if err != nil {
		return 0
	}
	defer sub.Unsubscribe()
	if err := r.mon.PublishRequest(subj, inbox, nil); err != nil {
		return 0
	}
	n := 0
	for {
		if _, err := sub.NextMsg(250 * time.Millisecond); err != nil {
			return n
		}
		n++
	}
}

// waitFor polls check until it succeeds, a component exits, or 30 s pass.
func (r *Runner) waitFor(ctx context.Context, what string, check func() error) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := check()
		if err == nil {
			return nil
		}
		for _, p := range r.procs {
			if p.exited() {
				return fmt.Errorf("%s exited: %v; log %s:\n%s", p.name, p.err, p.log, tail(p.log))
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after 30s: %w", what, err)
		}
		if !sleepUntil(ctx, time.Now().Add(20*time.Millisecond)) {
			return ctx.Err()
		}
	}
}

// tail returns the end of a log file.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(bytes.TrimSpace(b))
}
