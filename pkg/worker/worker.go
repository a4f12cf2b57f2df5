// Package worker runs an analyzer as a task worker: a nats.go micro service
// whose one endpoint takes jobs from the task's subject in a queue group, so
// every replica of a task shares its jobs and a pool grows by starting more
// processes.
//
// A micro endpoint calls its handler for one message at a time. To give a
// replica real concurrency the handler only admits the job (or refuses it
// when the replica is full) and a goroutine runs it, bounded by a semaphore
// of Concurrency slots. Admitted jobs get heartbeats while they wait and
// run, so the orchestrator can tell a busy replica from a dead one.
package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/visionmesh/vision/pkg/analyzer"
	"github.com/visionmesh/vision/pkg/claimcheck"
	"github.com/visionmesh/vision/pkg/imageinfo"
	"github.com/visionmesh/vision/pkg/job"
)

// Config sets up one worker replica.
type Config struct {
	// Task is the task name; jobs come from <Prefix>.task.<Task>.
	Task string
	// Prefix is the job subject prefix.
	Prefix string
	// Kind names the analyzer, for discovery metadata.
	Kind string
	// Concurrency is how many jobs run at once.
	Concurrency int
	// MaxQueue is how many admitted jobs may wait for a slot; beyond it
	// (or beyond MaxPendingBytes) a job is refused with code 503 and the
	// orchestrator sends it to another replica.
	MaxQueue int
	// MaxPendingBytes bounds the image bytes held by admitted jobs.
	MaxPendingBytes int64
	// MaxPixels refuses images whose header declares more pixels (a
	// decompression bomb) before the analyzer decodes anything.
	MaxPixels int64
	// Version is the service version reported by discovery (semver).
	Version string
}

// Defaults returns the default configuration for task.
func Defaults(task string) Config {
	return Config{
		Task:            task,
		Prefix:          job.DefaultPrefix,
		Kind:            "simulate",
		Concurrency:     4,
		MaxQueue:        64,
		MaxPendingBytes: 256 << 20,
		MaxPixels:       50_000_000,
		Version:         "0.1.0",
	}
}

// Validate reports whether c is usable.
func (c Config) Validate() error {
	if err := job.ValidName(c.Task); err != nil {
		return fmt.Errorf("worker: task: %w", err)
	}
	if err := job.ValidPrefix(c.Prefix); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	if c.Concurrency < 1 {
		return errors.New("worker: concurrency must be at least 1")
	}
	if c.MaxQueue < 0 || c.MaxPendingBytes < 1 || c.MaxPixels < 1 {
		return errors.New("worker: max queue must not be negative, max pending bytes and max pixels must be positive")
	}
	return nil
}

// Stats are a replica's job counters, reported in micro STATS data.
type Stats struct {
	Task        string  `json:"task"`
	Kind        string  `json:"analyzer"`
	Concurrency int     `json:"concurrency"`
	InFlight    int64   `json:"in_flight"`
	Queued      int64   `json:"queued"`
	Done        uint64  `json:"done"`
	Failed      uint64  `json:"failed"`
	Refused     uint64  `json:"refused"`
	Expired     uint64  `json:"expired"`
	AvgMS       float64 `json:"avg_ms"`
}

// Worker is one replica of a task's pool.
type Worker struct {
	nc  *nats.Conn
	a   analyzer.Analyzer
	cfg Config
	log *slog.Logger
	svc micro.Service
	id  string   // svc's instance id, cached for every reply
	obs Observer // nil: nothing observed
	tr  Tracer   // nil: no spans
	img Fetcher  // claim-checked images (Job-Object)

	slots chan struct{}
	stop  chan struct{} // closed by Shutdown: queued jobs are handed back

	mu           sync.Mutex
	stopping     bool
	held         int // admitted jobs, waiting or running
	pendingBytes int64
	jobs         sync.WaitGroup

	inFlight atomic.Int64
	done     atomic.Uint64
	failed   atomic.Uint64
	refused  atomic.Uint64
	expired  atomic.Uint64
	busyNS   atomic.Int64
}

// Fetcher reads a claim-checked image (claimcheck.Fetcher).
type Fetcher interface {
	// Fetch returns the image a Job-Object header refers to. Errors:
	// claimcheck.ErrMissing when it is gone (expired or deleted).
	Fetch(ctx context.Context, ref string) ([]byte, error)
}

var _ Fetcher = (*claimcheck.Fetcher)(nil)

// New returns a worker for cfg that runs a. Start makes it take jobs.
func New(nc *nats.Conn, a analyzer.Analyzer, cfg Config, log *slog.Logger) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	img, err := claimcheck.NewFetcher(nc)
	if err != nil {
		return nil, fmt.Errorf("worker %s: %w", cfg.Task, err)
	}
	return &Worker{
		nc:    nc,
		a:     a,
		cfg:   cfg,
		log:   log.With("task", cfg.Task),
		img:   img,
		slots: make(chan struct{}, cfg.Concurrency),
		stop:  make(chan struct{}),
	}, nil
}

// SetFetcher replaces the claim-check fetcher (tests); call it before Start.
func (w *Worker) SetFetcher(f Fetcher) { w.img = f }

// Start registers the micro service and its endpoint; jobs flow from then on.
func (w *Worker) Start() error {
	svc, err := micro.AddService(w.nc, micro.Config{
		Name:        w.cfg.Task,
		Version:     w.cfg.Version,
		Description: "image analysis task " + w.cfg.Task,
		Metadata: map[string]string{
			"task":        w.cfg.Task,
			"analyzer":    w.cfg.Kind,
			"concurrency": fmt.Sprint(w.cfg.Concurrency),
		},
		StatsHandler: func(*micro.Endpoint) any { return w.Stats() },
	})
	if err != nil {
		return fmt.Errorf("worker %s: add service: %w", w.cfg.Task, err)
	}
	// Set before the endpoint exists: jobs may arrive at once and their
	// replies carry the id.
	w.svc, w.id = svc, svc.Info().ID
	err = svc.AddEndpoint(w.cfg.Task, micro.HandlerFunc(w.admit),
		micro.WithEndpointSubject(job.Subject(w.cfg.Prefix, w.cfg.Task)),
		micro.WithEndpointQueueGroup(w.cfg.Task),
		// The handler never blocks, so pending messages stay few; the
		// bytes bound keeps a flood from growing the process unbounded.
		micro.WithEndpointPendingLimits(-1, int(2*w.cfg.MaxPendingBytes)),
	)
	if err != nil {
		_ = svc.Stop()
		return fmt.Errorf("worker %s: add endpoint: %w", w.cfg.Task, err)
	}
	// A round trip, so the server has the subscription when Start returns:
	// a job published right after (from any connection) finds this
	// replica instead of no responders. Not connected yet, the
	// subscription is sent on connect; nothing to wait for.
	if w.nc.IsConnected() {
		if err := w.nc.FlushTimeout(5 * time.Second); err != nil {
			w.log.Warn("flush after subscribing", "err", err)
		}
	}
	w.log.Info("worker started", "id", w.ID(), "subject", job.Subject(w.cfg.Prefix, w.cfg.Task),
		"concurrency", w.cfg.Concurrency, "analyzer", w.cfg.Kind)
	return nil
}

// Observer is told about every job the analyzer ran (metrics). It is
// called on the job's goroutine and must be safe for concurrent use.
type Observer interface {
	// ObserveJob gets the task, the error code replied ("" on success)
	// and the time the analyzer took.
	ObserveJob(task, code string, took time.Duration)
}

// SetObserver makes o observe every job; call it before Start.
func (w *Worker) SetObserver(o Observer) { w.obs = o }

func (w *Worker) observe(code string, took time.Duration) {
	if w.obs != nil {
		w.obs.ObserveJob(w.cfg.Task, code, took)
	}
}

// Tracer starts a span for every job a replica admits (tracing).
type Tracer interface {
	// StartJob gets the job's headers (with the caller's trace context)
	// and returns the context the job runs with, its trace id for the
	// job's log line, and the function that ends the span with the error
	// code replied ("" on success).
	StartJob(h nats.Header, task, jobID string) (ctx context.Context, traceID string, end func(code string))
}

// SetTracer makes t trace every job; call it before Start.
func (w *Worker) SetTracer(t Tracer) { w.tr = t }

// ID is the replica's micro instance id, sent in the Worker-Id header.
func (w *Worker) ID() string { return w.id }

// Stats returns the replica's counters.
func (w *Worker) Stats() Stats {
	w.mu.Lock()
	held := w.held
	w.mu.Unlock()
	inFlight := w.inFlight.Load()
	s := Stats{
		Task:        w.cfg.Task,
		Kind:        w.cfg.Kind,
		Concurrency: w.cfg.Concurrency,
		InFlight:    inFlight,
		Queued:      max(int64(held)-inFlight, 0),
		Done:        w.done.Load(),
		Failed:      w.failed.Load(),
		Refused:     w.refused.Load(),
		Expired:     w.expired.Load(),
	}
	if n := s.Done + s.Failed; n > 0 {
		s.AvgMS = float64(w.busyNS.Load()) / float64(n) / 1e6
	}
	return s
}

// Shutdown stops taking jobs, hands jobs still waiting for a slot back to
// the orchestrator (a busy reply, so another replica runs them) and waits
// for the running ones to finish and reply, or for ctx to end. The caller
// then drains the connection, which answers any job that was still in the
// subscription's buffer.
func (w *Worker) Shutdown(ctx context.Context) error {
	if w.svc != nil {
		if err := w.svc.Stop(); err != nil {
			w.log.Warn("stop service", "err", err)
		}
	}
	w.mu.Lock()
	if !w.stopping {
		w.stopping = true
		close(w.stop)
	}
	w.mu.Unlock()
	finished := make(chan struct{})
	go func() {
		w.jobs.Wait()
		close(finished)
	}()
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("worker %s: shutdown: %d jobs still running: %w", w.cfg.Task, w.inFlight.Load(), ctx.Err())
	}
}

// admit is the endpoint handler. It runs on the subscription's goroutine,
// so it only checks the job and hands it to a goroutine.
func (w *Worker) admit(req micro.Request) {
	if req.Reply() == "" {
		return // nobody to answer
	}
	h := req.Headers()
	meta, code, err := parseJob(h, time.Now())
	if err != nil {
		if code == job.CodeDeadline {
			w.expired.Add(1)
		}
		w.refuse(req, code, err.Error())
		return
	}
	size := int64(len(req.Data()))

	w.mu.Lock()
	switch {
	case w.stopping:
		w.mu.Unlock()
		w.refuse(req, job.CodeBusy, "worker is shutting down")
		return
	case w.held >= w.cfg.MaxQueue+w.cfg.Concurrency, w.pendingBytes+size > w.cfg.MaxPendingBytes:
		w.mu.Unlock()
		w.refused.Add(1)
		w.refuse(req, job.CodeBusy, "worker is full")
		return
	}
	w.held++
	w.pendingBytes += size
	w.jobs.Add(1)
	w.mu.Unlock()

	j := &task{
		id:       meta.id,
		reply:    req.Reply(),
		deadline: meta.deadline,
		beat:     meta.beat,
		object:   meta.object,
		held:     size,
		in: analyzer.Input{
			JobID:       meta.id,
			Task:        w.cfg.Task,
			ContentType: h.Get(job.HeaderContentType),
			Data:        req.Data(),
		},
		attempt: h.Get(job.HeaderAttempt),
		ctx:     context.Background(),
	}
	if w.tr != nil {
		j.ctx, j.traceID, j.end = w.tr.StartJob(nats.Header(h), w.cfg.Task, meta.id)
	}
	go w.run(j)
}

// jobMeta is what a job's headers say.
type jobMeta struct {
	id       string
	deadline time.Time
	beat     time.Duration
	object   string // Job-Object: the image is fetched, the body is empty
}

// minHeartbeat bounds how often a worker sends heartbeats, whatever the
// orchestrator asks.
const minHeartbeat = 10 * time.Millisecond

// parseJob reads a job's headers. On error it also returns the error code
// to reply with.
func parseJob(h micro.Headers, now time.Time) (jobMeta, string, error) {
	var m jobMeta
	m.id = h.Get(job.HeaderID)
	if m.id == "" {
		return m, job.CodeBadJob, fmt.Errorf("bad job: no %s header", job.HeaderID)
	}
	dl, err := job.ParseDeadline(h.Get(job.HeaderDeadline))
	if err != nil {
		return m, job.CodeBadJob, fmt.Errorf("bad job: %w", err)
	}
	if !now.Before(dl) {
		return m, job.CodeDeadline, fmt.Errorf("deadline passed before the job arrived")
	}
	m.deadline = dl
	if v := h.Get(job.HeaderHeartbeat); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return m, job.CodeBadJob, fmt.Errorf("bad job: %s %q", job.HeaderHeartbeat, v)
		}
		m.beat = max(d, minHeartbeat)
	}
	if v := h.Get(job.HeaderObject); v != "" {
		if _, _, err := job.ParseObjectRef(v); err != nil {
			return m, job.CodeBadJob, fmt.Errorf("bad job: %w", err)
		}
		m.object = v
	}
	return m, "", nil
}

// refuse answers a job with an error from within the handler.
func (w *Worker) refuse(req micro.Request, code, msg string) {
	if err := req.Error(code, msg, nil, micro.WithHeaders(micro.Headers{job.HeaderWorker: {w.ID()}})); err != nil {
		w.log.Warn("reply", "err", err)
	}
}

// task is one admitted job.
type task struct {
	id       string
	reply    string
	deadline time.Time
	beat     time.Duration
	attempt  string
	object   string // Job-Object reference; in.Data is fetched in run
	held     int64  // bytes counted in pendingBytes at admission
	in       analyzer.Input
	ctx      context.Context   // the job span's (Tracer), else Background
	traceID  string            // for the log line
	end      func(code string) // ends the job span
}

// finish ends the job's span, if it has one.
func (t *task) finish(code string) {
	if t.end != nil {
		t.end(code)
	}
}

func (w *Worker) run(t *task) {
	defer w.jobs.Done()
	stopBeat := w.heartbeat(t)
	release := func() {
		w.mu.Lock()
		w.held--
		w.pendingBytes -= t.held
		w.mu.Unlock()
	}

	// Check the header again here: the worker may be reached by other
	// publishers than the orchestrator, and must never decode a bomb.
	// A claim-checked image is checked once fetched, below.
	if t.object == "" {
		if err := w.inspect(t); err != nil {
			stopBeat()
			release()
			w.failed.Add(1)
			w.publishError(t, job.CodeBadImage, err.Error())
			return
		}
	}

	ctx, cancel := context.WithDeadline(t.ctx, t.deadline)
	defer cancel()
	select {
	case w.slots <- struct{}{}:
	case <-w.stop:
		stopBeat()
		release()
		w.publishError(t, job.CodeBusy, "worker is shutting down")
		return
	case <-ctx.Done():
		stopBeat()
		release()
		w.expired.Add(1)
		w.publishError(t, job.CodeDeadline, "deadline passed while queued")
		return
	}
	if t.object != "" {
		// Fetched only once a slot is held, so a replica holds at most
		// Concurrency large images however many jobs wait.
		if code, err := w.fetch(ctx, t); err != nil {
			<-w.slots
			stopBeat()
			release()
			w.failed.Add(1)
			w.log.Warn("job failed", "job_id", t.id, "code", code, "err", err)
			w.publishError(t, code, err.Error())
			return
		}
	}
	w.inFlight.Add(1)
	start := time.Now()
	res, err := w.analyze(ctx, t.in)
	took := time.Since(start)
	w.inFlight.Add(-1)
	<-w.slots
	stopBeat()
	release()
	w.busyNS.Add(int64(took))

	// The job's log attributes, built only for a line that is written:
	// Logger.With on every job cost more than the rest of the bookkeeping.
	attrs := func(more ...any) []any {
		a := append(make([]any, 0, 8+len(more)), "job_id", t.id, "attempt", t.attempt, "ms", float64(took.Microseconds())/1000)
		if t.traceID != "" {
			a = append(a, "trace_id", t.traceID)
		}
		return append(a, more...)
	}
	var body []byte
	if err == nil {
		body, err = json.Marshal(res)
	}
	if err != nil {
		w.failed.Add(1)
		code := codeOf(ctx, err)
		w.observe(code, took)
		w.log.Warn("job failed", attrs("code", code, "err", err)...)
		w.publishError(t, code, err.Error())
		return
	}
	w.done.Add(1)
	w.observe("", took)
	if w.log.Enabled(ctx, slog.LevelDebug) {
		w.log.Debug("job done", attrs()...)
	}
	w.publish(t, &nats.Msg{Data: body, Header: nats.Header{
		job.HeaderWorker: {w.ID()},
		job.HeaderID:     {t.id},
		"Content-Type":   {"application/json"},
	}})
	t.finish("")
}

// inspect checks t's image header and sets its content type.
func (w *Worker) inspect(t *task) error {
	info, err := imageinfo.Inspect(t.in.Data, w.cfg.MaxPixels)
	if err != nil {
		return err
	}
	t.in.ContentType = info.ContentType
	return nil
}

// fetch loads a claim-checked image into t and inspects it. On error it
// also returns the code to reply with: 422 when the object is gone (expired
// or deleted: no replica will find it), 504 when the deadline passed, 503
// otherwise (NATS or JetStream trouble: the orchestrator may re-dispatch).
func (w *Worker) fetch(ctx context.Context, t *task) (string, error) {
	data, err := w.img.Fetch(ctx, t.object)
	switch {
	case errors.Is(err, claimcheck.ErrMissing):
		return job.CodeBadImage, err
	case err != nil && ctx.Err() != nil:
		return job.CodeDeadline, fmt.Errorf("deadline passed while fetching the image: %w", err)
	case err != nil:
		return job.CodeUnavailable, err
	}
	t.in.Data = data
	if err := w.inspect(t); err != nil {
		return job.CodeBadImage, err
	}
	return "", nil
}

// analyze runs the analyzer and turns a panic into an error.
func (w *Worker) analyze(ctx context.Context, in analyzer.Input) (res any, err error) {
	defer func() {
		if p := recover(); p != nil {
			w.log.Error("analyzer panicked", "job_id", in.JobID, "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("analyzer panicked: %v", p)
		}
	}()
	return w.a.Analyze(ctx, in)
}

func codeOf(ctx context.Context, err error) string {
	switch {
	case errors.Is(err, analyzer.ErrBadImage):
		return job.CodeBadImage
	case errors.Is(err, analyzer.ErrUnavailable):
		return job.CodeUnavailable
	case errors.Is(err, context.DeadlineExceeded), ctx.Err() != nil:
		return job.CodeDeadline
	default:
		return job.CodeFailed
	}
}

// heartbeat sends heartbeats for t until the returned stop is called; stop
// returns once no heartbeat can follow.
func (w *Worker) heartbeat(t *task) (stop func()) {
	if t.beat <= 0 {
		return func() {}
	}
	// A timer, not a goroutine with a ticker: most jobs end before the
	// first beat, and then the heartbeat costs one timer and puts no
	// goroutine hand-off on the reply's path.
	var (
		mu      sync.Mutex
		stopped bool
		tm      *time.Timer
	)
	mu.Lock()
	tm = time.AfterFunc(t.beat, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		w.publish(t, &nats.Msg{Header: nats.Header{
			job.HeaderStatus: {job.StatusWorking},
			job.HeaderWorker: {w.ID()},
		}})
		tm.Reset(t.beat)
	})
	mu.Unlock()
	return func() {
		mu.Lock()
		stopped = true
		mu.Unlock()
		tm.Stop()
	}
}

func (w *Worker) publishError(t *task, code, msg string) {
	w.publish(t, &nats.Msg{Header: nats.Header{
		micro.ErrorHeader:     {msg},
		micro.ErrorCodeHeader: {code},
		job.HeaderWorker:      {w.ID()},
		job.HeaderID:          {t.id},
	}})
	t.finish(code)
}

func (w *Worker) publish(t *task, m *nats.Msg) {
	m.Subject = t.reply
	if err := w.nc.PublishMsg(m); err != nil {
		w.log.Warn("reply", "job_id", t.id, "err", err)
	}
}
