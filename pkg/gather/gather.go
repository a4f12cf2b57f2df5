// Package gather is the orchestrator's side of a job: it publishes one
// request per task, all at once (or one after another in serial mode), and
// gathers the replies under a deadline.
//
// Replies come back on one wildcard subscription (the mux), one reply subject
// per task of a job. A task's reply subject stays the same across
// re-dispatches, so whichever replica answers first wins and any later or
// duplicate reply is dropped. When the job ends its entries leave the mux,
// so a reply that arrives after the deadline finds nothing and is counted,
// not delivered: no goroutine, timer or map entry outlives Run.
//
// Workers that honour the Job-Heartbeat header send a heartbeat while they
// hold a job. A dispatch that has not been heard from for Lease is presumed
// lost (its replica died) and is sent again, so a killed replica costs
// latency, not an answer.
package gather

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nuid"

	"github.com/visionmesh/vision/pkg/job"
)

// Conn is what the gatherer needs of a NATS connection.
type Conn interface {
	PublishMsg(m *nats.Msg) error
	Subscribe(subj string, cb nats.MsgHandler) (*nats.Subscription, error)
}

var _ Conn = (*nats.Conn)(nil)

// Status is the outcome of one task of a job.
type Status string

// Task statuses.
const (
	StatusOK          Status = "ok"          // the worker returned a result
	StatusError       Status = "error"       // the worker returned an error
	StatusTimeout     Status = "timeout"     // no answer before the deadline
	StatusUnavailable Status = "unavailable" // no worker is running for the task
)

// Config tunes a Gatherer. Zero values take the defaults in Defaults.
type Config struct {
	// Prefix is the job subject prefix: jobs go to <Prefix>.task.<task>.
	Prefix string
	// InboxPrefix is where replies come back (nats.CustomInboxPrefix).
	InboxPrefix string
	// Heartbeat is the interval workers are asked to send heartbeats at.
	// Zero disables heartbeats and leases.
	Heartbeat time.Duration
	// Lease is how long a dispatch may stay silent before it is presumed
	// lost and sent again. It should be several heartbeats.
	Lease time.Duration
	// MaxAttempts bounds dispatches per task (lost replicas, busy replies).
	MaxAttempts int
	// RetryBackoff is the pause before re-sending a task a busy replica
	// refused, multiplied by the attempt number.
	RetryBackoff time.Duration
}

// Defaults returns the default configuration.
func Defaults() Config {
	return Config{
		Prefix:       job.DefaultPrefix,
		InboxPrefix:  "_INBOX.orch",
		Heartbeat:    250 * time.Millisecond,
		Lease:        time.Second,
		MaxAttempts:  3,
		RetryBackoff: 20 * time.Millisecond,
	}
}

// Validate reports whether c is usable.
func (c Config) Validate() error {
	if err := job.ValidPrefix(c.Prefix); err != nil {
		return fmt.Errorf("gather: %w", err)
	}
	if c.InboxPrefix == "" {
		return errors.New("gather: empty inbox prefix")
	}
	if c.Heartbeat < 0 || c.Lease < 0 || c.RetryBackoff < 0 {
		return errors.New("gather: durations must not be negative")
	}
	if c.Heartbeat > 0 && c.Lease < 2*c.Heartbeat {
		return fmt.Errorf("gather: lease %v must be at least two heartbeats (%v)", c.Lease, c.Heartbeat)
	}
	if c.MaxAttempts < 1 {
		return errors.New("gather: max attempts must be at least 1")
	}
	return nil
}

// Job is one image to run through a list of tasks.
type Job struct {
	// ID is the job id (a uuid) sent to workers.
	ID string
	// Tasks are the task names, in order (serial mode runs them so).
	Tasks []string
	// Data is the image, published as it is to every task. The caller keeps
	// ownership; Run does not retain it after it returns.
	Data []byte
	// ContentType is the image's media type.
	ContentType string
	// Timeout bounds the whole job, or each task in serial mode.
	Timeout time.Duration
	// Serial dispatches each task only when the previous one has ended.
	Serial bool
	// Header holds extra headers for every request (trace context).
	Header nats.Header
	// OnOutcome, if set, is called with each task's outcome as it lands,
	// from Run's goroutine: it must return quickly (async jobs store it).
	OnOutcome func(Outcome)
}

// Error says why a task has no result.
type Error struct {
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
}

// Outcome is what became of one task of a job.
type Outcome struct {
	Task     string
	Status   Status
	Started  time.Duration // first dispatch, from the start of the job
	Elapsed  time.Duration // from first dispatch to outcome
	Worker   string
	Attempts int
	Result   json.RawMessage
	Error    *Error
}

// Gatherer dispatches jobs and gathers their replies. It is safe for
// concurrent use; one per orchestrator process is enough.
type Gatherer struct {
	nc   Conn
	cfg  Config
	sub  *nats.Subscription
	base string // <inbox>.<nuid>. ; a token follows

	mu    sync.Mutex
	calls map[string]call

	next    atomic.Uint64
	dropped atomic.Uint64

	tracer Tracer // nil: no spans
}

// Tracer starts a span for every task of a job (tracing).
type Tracer interface {
	// StartTask is called at a task's first dispatch with the context Run
	// was given. It writes the span's trace context into h, which is sent
	// with every dispatch of the task, and returns the function that ends
	// the span with the task's outcome.
	StartTask(ctx context.Context, jobID, task string, h nats.Header) (end func(Outcome))
}

// SetTracer makes t trace every task; call it before the first Run.
func (g *Gatherer) SetTracer(t Tracer) { g.tracer = t }

type call struct {
	ch  chan<- reply
	idx int
}

type reply struct {
	idx int
	msg *nats.Msg
	at  time.Time
}

// New subscribes to the reply inbox and returns a Gatherer.
func New(nc Conn, cfg Config) (*Gatherer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g := &Gatherer{
		nc:    nc,
		cfg:   cfg,
		base:  cfg.InboxPrefix + "." + nuid.Next() + ".",
		calls: make(map[string]call),
	}
	sub, err := nc.Subscribe(g.base+"*", g.onReply)
	if err != nil {
		return nil, fmt.Errorf("gather: subscribe %s*: %w", g.base, err)
	}
	// Replies are small and handled fast; never let the mux drop them.
	if err := sub.SetPendingLimits(-1, 64<<20); err != nil {
		return nil, fmt.Errorf("gather: pending limits: %w", err)
	}
	g.sub = sub
	return g, nil
}

// Close stops receiving replies. Jobs still running end at their deadline.
func (g *Gatherer) Close() error {
	if err := g.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("gather: unsubscribe: %w", err)
	}
	return nil
}

// Dropped counts replies that found no waiting task: late (after the
// deadline), duplicate, or for a job that already ended.
func (g *Gatherer) Dropped() uint64 { return g.dropped.Load() }

// Pending is the number of task reply subjects currently registered; it is
// zero when no job is running (tests use it to prove nothing leaks).
func (g *Gatherer) Pending() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.calls)
}

func (g *Gatherer) onReply(m *nats.Msg) {
	at := time.Now()
	if len(m.Subject) <= len(g.base) {
		g.dropped.Add(1)
		return
	}
	token := m.Subject[len(g.base):]
	g.mu.Lock()
	c, ok := g.calls[token]
	g.mu.Unlock()
	if !ok {
		g.dropped.Add(1)
		return
	}
	select {
	case c.ch <- reply{idx: c.idx, msg: m, at: at}:
	default: // the job is not reading; it is about to end
		g.dropped.Add(1)
	}
}

// task is the state of one task while its job runs.
type task struct {
	subject  string
	inbox    string
	token    string
	started  time.Time // first dispatch
	deadline time.Time
	lastSeen time.Time // last dispatch or message from a worker
	retryAt  time.Time // when waiting to re-send after a busy reply
	attempts int
	inFlight bool
	done     bool
	lost     int             // dispatches presumed lost
	trace    nats.Header     // the task span's trace context (Tracer)
	end      func(o Outcome) // ends the task span
}

// Run dispatches j and returns one Outcome per task, in j.Tasks order. It
// returns when every task has an outcome, at the deadline, or when ctx ends
// (remaining tasks then get StatusTimeout).
func (g *Gatherer) Run(ctx context.Context, j Job) []Outcome {
	r := g.newRun(j)
	r.ctx = ctx
	defer r.release()

	if j.Serial {
		r.startNext(time.Now())
	} else {
		now := time.Now()
		for i := range r.ts {
			r.dispatch(i, now)
		}
	}

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for r.remaining > 0 {
		timer.Reset(time.Until(r.nextWake()))
		select {
		case rep := <-r.ch:
			r.handle(rep)
		case <-timer.C:
			r.tick(time.Now())
		case <-ctx.Done():
			now := time.Now()
			for i := range r.ts {
				r.finish(i, now, StatusTimeout, &Error{Message: "request cancelled: " + ctx.Err().Error()})
			}
		}
		if j.Serial && r.remaining > 0 {
			r.startNext(time.Now())
		}
	}
	return r.out
}

// run is the state of one job while Run gathers it; only Run's goroutine
// touches it.
type run struct {
	ctx       context.Context
	g         *Gatherer
	j         Job
	start     time.Time
	ts        []task
	out       []Outcome
	ch        chan reply
	remaining int
}

func (g *Gatherer) newRun(j Job) *run {
	n := len(j.Tasks)
	r := &run{
		g:         g,
		j:         j,
		start:     time.Now(),
		ts:        make([]task, n),
		out:       make([]Outcome, n),
		ch:        make(chan reply, 4*n+8),
		remaining: n,
	}
	g.mu.Lock()
	for i, name := range j.Tasks {
		r.out[i].Task = name
		tok := strconv.FormatUint(g.next.Add(1), 36)
		r.ts[i] = task{subject: job.Subject(g.cfg.Prefix, name), token: tok, inbox: g.base + tok}
		g.calls[tok] = call{ch: r.ch, idx: i}
	}
	g.mu.Unlock()
	return r
}

// release takes the job's reply subjects out of the mux.
func (r *run) release() {
	r.g.mu.Lock()
	for i := range r.ts {
		delete(r.g.calls, r.ts[i].token)
	}
	r.g.mu.Unlock()
}

func (r *run) finish(i int, now time.Time, st Status, e *Error) {
	t := &r.ts[i]
	if t.done {
		return
	}
	t.done, t.inFlight = true, false
	r.remaining--
	o := &r.out[i]
	o.Status, o.Error, o.Attempts = st, e, t.attempts
	if !t.started.IsZero() {
		o.Started = t.started.Sub(r.start)
		o.Elapsed = now.Sub(t.started)
	}
	if t.end != nil {
		t.end(*o)
	}
	if r.j.OnOutcome != nil {
		r.j.OnOutcome(*o)
	}
}

func (r *run) dispatch(i int, now time.Time) {
	t := &r.ts[i]
	if t.attempts == 0 {
		t.started = now
		t.deadline = r.start.Add(r.j.Timeout)
		if r.j.Serial {
			t.deadline = now.Add(r.j.Timeout)
		}
		if r.g.tracer != nil {
			t.trace = nats.Header{}
			t.end = r.g.tracer.StartTask(r.ctx, r.j.ID, r.out[i].Task, t.trace)
		}
	}
	t.attempts++
	t.inFlight, t.lastSeen, t.retryAt = true, now, time.Time{}
	err := r.g.nc.PublishMsg(&nats.Msg{
		Subject: t.subject,
		Reply:   t.inbox,
		Data:    r.j.Data,
		Header:  r.header(t),
	})
	if err != nil {
		r.finish(i, now, StatusUnavailable, &Error{Message: fmt.Sprintf("publish %s: %v", t.subject, err)})
	}
}

// startNext dispatches the next task not yet started, in serial mode.
func (r *run) startNext(now time.Time) {
	for i := range r.ts {
		if !r.ts[i].done && r.ts[i].attempts == 0 {
			r.dispatch(i, now)
			if !r.ts[i].done {
				return
			}
		} else if !r.ts[i].done {
			return // one is running
		}
	}
}

func (r *run) header(t *task) nats.Header {
	h := make(nats.Header, 6+len(r.j.Header))
	for k, v := range r.j.Header {
		h[k] = v
	}
	for k, v := range t.trace {
		h[k] = v
	}
	h[job.HeaderID] = []string{r.j.ID}
	h[job.HeaderContentType] = []string{r.j.ContentType}
	h[job.HeaderDeadline] = []string{job.FormatDeadline(t.deadline)}
	h[job.HeaderAttempt] = []string{strconv.Itoa(t.attempts)}
	if r.g.cfg.Heartbeat > 0 {
		h[job.HeaderHeartbeat] = []string{r.g.cfg.Heartbeat.String()}
	}
	return h
}

// leaseWatched reports whether t's lease is watched: leases are on and
// another dispatch is allowed.
func (r *run) leaseWatched(t *task) bool {
	return t.inFlight && r.g.cfg.Lease > 0 && t.attempts < r.g.cfg.MaxAttempts
}

// nextWake is the earliest moment a task needs attention without a reply.
func (r *run) nextWake() time.Time {
	var wake time.Time
	early := func(t time.Time) {
		if !t.IsZero() && (wake.IsZero() || t.Before(wake)) {
			wake = t
		}
	}
	for i := range r.ts {
		t := &r.ts[i]
		if t.done || t.attempts == 0 {
			continue
		}
		early(t.deadline)
		early(t.retryAt)
		if r.leaseWatched(t) {
			early(t.lastSeen.Add(r.g.cfg.Lease))
		}
	}
	if wake.IsZero() {
		return time.Now().Add(time.Hour)
	}
	return wake
}

// tick handles deadlines, expired leases and due retries.
func (r *run) tick(now time.Time) {
	for i := range r.ts {
		t := &r.ts[i]
		if t.done || t.attempts == 0 {
			continue
		}
		switch {
		case !now.Before(t.deadline):
			msg := "no reply before the deadline"
			if t.lost > 0 {
				msg = fmt.Sprintf("no reply before the deadline (%d dispatches lost)", t.lost)
			}
			r.finish(i, t.deadline, StatusTimeout, &Error{Message: msg})
		case !t.retryAt.IsZero() && !now.Before(t.retryAt):
			r.dispatch(i, now)
		case r.leaseWatched(t) && now.Sub(t.lastSeen) >= r.g.cfg.Lease:
			// The replica holding it went silent: presumed dead. Send it
			// again; the reply subject stays, so a late answer from the
			// first replica is still welcome and the second is dropped.
			t.lost++
			r.dispatch(i, now)
		}
	}
}

// replyKind is what a message on a task's reply subject is.
type replyKind int

const (
	kindResult       replyKind = iota // a worker's JSON result
	kindNoResponders                  // NATS: nobody subscribes to the task subject
	kindHeartbeat                     // a worker still holds the job
	kindError                         // a worker's micro error reply
)

// classify tells what m is, from its headers.
func classify(m *nats.Msg) replyKind {
	switch {
	case len(m.Data) == 0 && m.Header.Get("Status") == "503":
		return kindNoResponders
	case m.Header.Get(job.HeaderStatus) == job.StatusWorking:
		return kindHeartbeat
	case m.Header.Get(micro.ErrorCodeHeader) != "":
		return kindError
	default:
		return kindResult
	}
}

// handle applies one reply message to its task.
func (r *run) handle(rep reply) {
	i, m, at := rep.idx, rep.msg, rep.at
	t := &r.ts[i]
	if t.done {
		r.g.dropped.Add(1)
		return
	}
	t.lastSeen = at
	switch classify(m) {
	case kindNoResponders:
		r.finish(i, at, StatusUnavailable, &Error{Code: "503", Message: "no worker running for task " + r.out[i].Task})
	case kindHeartbeat:
		// The lease was renewed above.
	case kindError:
		code := m.Header.Get(micro.ErrorCodeHeader)
		e := &Error{Code: code, Message: m.Header.Get(micro.ErrorHeader)}
		r.out[i].Worker = m.Header.Get(job.HeaderWorker)
		if code == job.CodeBusy && t.attempts < r.g.cfg.MaxAttempts {
			// The replica refused it (queue full): try again shortly,
			// most likely on another replica.
			t.inFlight = false
			t.retryAt = at.Add(time.Duration(t.attempts) * r.g.cfg.RetryBackoff)
			if t.retryAt.Before(t.deadline) {
				return
			}
		}
		st := StatusError
		if code == job.CodeDeadline {
			st = StatusTimeout // the worker ran out of time: same as no reply
		}
		r.finish(i, at, st, e)
	case kindResult:
		r.out[i].Worker = m.Header.Get(job.HeaderWorker)
		if !json.Valid(m.Data) {
			r.finish(i, at, StatusError, &Error{Code: job.CodeFailed, Message: "worker reply is not valid JSON"})
			return
		}
		r.out[i].Result = m.Data
		r.finish(i, at, StatusOK, nil)
	}
}
