// Package discovery finds the worker replicas of every task through the
// nats.go micro discovery subjects and sums their counters: it is what the
// orchestrator's GET /v1/workers answers with.
//
// One STATS request per task goes to $SRV.STATS.<task>; every replica of the
// task's micro service answers on the request's reply subject, and the
// replies are collected until no more arrive for a short idle time (or an
// overall timeout passes). A task nobody serves is known at once: NATS
// answers its request with no-responders. Replies come back on an inbox made
// by the connection's NewInbox, so they honour nats.CustomInboxPrefix (the
// orchestrator may only subscribe under _INBOX.orch.>).
package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/visionmesh/vision/pkg/job"
	"github.com/visionmesh/vision/pkg/worker"
)

// Conn is what discovery needs of a NATS connection.
type Conn interface {
	NewInbox() string
	Subscribe(subj string, cb nats.MsgHandler) (*nats.Subscription, error)
	PublishMsg(m *nats.Msg) error
}

var _ Conn = (*nats.Conn)(nil)

// ErrNotConnected means the request could not be sent: NATS is unreachable.
var ErrNotConnected = errors.New("not connected to NATS")

// Config tunes a Discoverer.
type Config struct {
	// Tasks are the task names to report, in order; each appears in the
	// report even when no replica serves it.
	Tasks []string
	// Prefix is the job subject prefix: a replica counts for a task when
	// its endpoint listens on <Prefix>.task.<task>, so pools of another
	// deployment sharing the NATS server are left out.
	Prefix string
	// Timeout bounds one discovery round.
	Timeout time.Duration
	// Idle ends a round early once every task has answered and no reply
	// has arrived for this long.
	Idle time.Duration
	// MaxAge lets concurrent and closely following callers share one
	// round: a report younger than MaxAge is returned as it is.
	MaxAge time.Duration
}

// Defaults returns the default configuration for tasks.
func Defaults(tasks []string) Config {
	return Config{
		Tasks:   tasks,
		Prefix:  job.DefaultPrefix,
		Timeout: time.Second,
		Idle:    100 * time.Millisecond,
		MaxAge:  250 * time.Millisecond,
	}
}

// Validate reports whether c is usable.
func (c Config) Validate() error {
	if len(c.Tasks) == 0 {
		return errors.New("discovery: no tasks")
	}
	for _, t := range c.Tasks {
		if err := job.ValidName(t); err != nil {
			return fmt.Errorf("discovery: task: %w", err)
		}
	}
	if err := job.ValidPrefix(c.Prefix); err != nil {
		return fmt.Errorf("discovery: %w", err)
	}
	if c.Timeout <= 0 || c.Idle <= 0 || c.MaxAge < 0 {
		return errors.New("discovery: timeout and idle must be positive, max age not negative")
	}
	return nil
}

// Report is the state of every task's worker pool.
type Report struct {
	// Tasks has one entry per configured task, in configured order.
	Tasks []Pool `json:"tasks"`
	// At is when the round started; ElapsedMS how long it took.
	At        time.Time `json:"at"`
	ElapsedMS float64   `json:"elapsed_ms"`
}

// Pool sums the counters of one task's replicas.
type Pool struct {
	Task     string `json:"task"`
	Replicas int    `json:"replicas"`
	// Concurrency is the number of job slots over all replicas.
	Concurrency int   `json:"concurrency"`
	InFlight    int64 `json:"in_flight"`
	Queued      int64 `json:"queued"`
	// Done, Failed (errors), Refused (busy) and Expired (deadline passed
	// before the work) count jobs since each replica started.
	Done    uint64 `json:"done"`
	Failed  uint64 `json:"failed"`
	Refused uint64 `json:"refused"`
	Expired uint64 `json:"expired"`
	// AvgMS is the mean time of a finished job, over all replicas.
	AvgMS float64 `json:"avg_ms"`
	// Workers lists the replicas, sorted by id.
	Workers []Replica `json:"workers"`
}

// Replica is one worker process as its STATS reply describes it.
type Replica struct {
	ID      string    `json:"id"`
	Version string    `json:"version"`
	Started time.Time `json:"started"`
	worker.Stats
}

// Discoverer runs discovery rounds; it is safe for concurrent use.
type Discoverer struct {
	nc  Conn
	cfg Config

	mu   sync.Mutex
	last *Report
	run  *round // the round in progress, shared by its callers
}

type round struct {
	done chan struct{}
	rep  *Report
	err  error
}

// New returns a Discoverer; cfg must be valid.
func New(nc Conn, cfg Config) (*Discoverer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Tasks = slices.Clone(cfg.Tasks)
	return &Discoverer{nc: nc, cfg: cfg}, nil
}

// Pools returns the state of every task's pool: the last report when it is
// younger than MaxAge, the report of the round in progress, or a new round.
// It returns ErrNotConnected when the request cannot be sent, or ctx's error.
// The caller must not modify the report: concurrent callers share it.
func (d *Discoverer) Pools(ctx context.Context) (*Report, error) {
	d.mu.Lock()
	if d.last != nil && time.Since(d.last.At) < d.cfg.MaxAge {
		rep := d.last
		d.mu.Unlock()
		return rep, nil
	}
	r := d.run
	if r == nil {
		r = &round{done: make(chan struct{})}
		d.run = r
		go func() {
			// The round is shared, so it is not cut short by one caller's
			// context; it ends at Timeout on its own.
			r.rep, r.err = d.discover(context.Background())
			d.mu.Lock()
			if r.err == nil {
				d.last = r.rep
			}
			d.run = nil
			d.mu.Unlock()
			close(r.done)
		}()
	}
	d.mu.Unlock()
	select {
	case <-r.done:
		return r.rep, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// collector holds what one round has learned; the subscription's callback
// fills it, discover waits on it.
type collector struct {
	d     *Discoverer
	inbox string
	wake  chan struct{} // a reply arrived (capacity 1, never blocks)

	mu       sync.Mutex
	pending  int                           // tasks without any answer yet
	answered map[string]bool               // by task: a reply or no-responders arrived
	replicas map[string]map[string]Replica // by task, by replica id
}

// onReply runs on the subscription's goroutine.
func (c *collector) onReply(m *nats.Msg) {
	task := strings.TrimPrefix(m.Subject, c.inbox+".")
	// Status messages (no-responders) carry no data: decode outside the lock.
	var rep Replica
	ok := len(m.Data) > 0 && m.Header.Get("Status") == ""
	if ok {
		rep, ok = c.d.parse(m.Data, task)
	}
	c.mu.Lock()
	reps, known := c.replicas[task]
	if known {
		if !c.answered[task] {
			c.answered[task] = true
			c.pending--
		}
		if ok {
			reps[rep.ID] = rep
		}
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// discover runs one round: a STATS request per task, replies gathered on
// one inbox subscription, one reply subject per task (so that a
// no-responders answer says which task has no replica).
func (d *Discoverer) discover(ctx context.Context) (*Report, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()

	c := &collector{
		d:        d,
		inbox:    d.nc.NewInbox(),
		wake:     make(chan struct{}, 1),
		pending:  len(d.cfg.Tasks),
		answered: make(map[string]bool, len(d.cfg.Tasks)),
		replicas: make(map[string]map[string]Replica, len(d.cfg.Tasks)),
	}
	for _, task := range d.cfg.Tasks {
		c.replicas[task] = map[string]Replica{}
	}
	sub, err := d.nc.Subscribe(c.inbox+".*", c.onReply)
	if err != nil {
		return nil, fmt.Errorf("discovery: subscribe: %w: %w", ErrNotConnected, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	for _, task := range d.cfg.Tasks {
		err := d.nc.PublishMsg(&nats.Msg{
			Subject: "$SRV." + micro.StatsVerb.String() + "." + task,
			Reply:   c.inbox + "." + task,
		})
		if err != nil {
			return nil, fmt.Errorf("discovery: request stats of %s: %w: %w", task, ErrNotConnected, err)
		}
	}

	// Wait for the timeout, or until every task has answered and no reply
	// has come for the idle time.
	idle := time.NewTimer(time.Hour)
	defer idle.Stop()
	for done := false; !done; {
		c.mu.Lock()
		all := c.pending == 0
		c.mu.Unlock()
		if all {
			idle.Reset(d.cfg.Idle)
		}
		select {
		case <-c.wake:
		case <-idle.C:
			done = true
		case <-ctx.Done():
			done = true
		}
	}
	_ = sub.Unsubscribe()

	out := &Report{At: start, Tasks: make([]Pool, 0, len(d.cfg.Tasks))}
	c.mu.Lock()
	for _, task := range d.cfg.Tasks {
		out.Tasks = append(out.Tasks, summarize(task, c.replicas[task]))
	}
	c.mu.Unlock()
	out.ElapsedMS = float64(time.Since(start).Microseconds()) / 1000
	return out, nil
}

// parse decodes one STATS reply for task. A reply of another deployment
// (its endpoint on another subject) or of another kind of service is
// skipped.
func (d *Discoverer) parse(data []byte, task string) (Replica, bool) {
	var st micro.Stats
	if err := json.Unmarshal(data, &st); err != nil || st.Type != micro.StatsResponseType || st.ID == "" || st.Name != task {
		return Replica{}, false
	}
	subject := job.Subject(d.cfg.Prefix, task)
	for _, ep := range st.Endpoints {
		if ep == nil || ep.Subject != subject {
			continue
		}
		r := Replica{ID: st.ID, Version: st.Version, Started: st.Started}
		if len(ep.Data) == 0 || json.Unmarshal(ep.Data, &r.Stats) != nil {
			// Not one of our workers' counters: fall back on micro's own,
			// which count messages handled rather than jobs.
			r.Stats = worker.Stats{
				Task:   task,
				Done:   uint64(max(ep.NumRequests-ep.NumErrors, 0)),
				Failed: uint64(max(ep.NumErrors, 0)),
				AvgMS:  float64(ep.AverageProcessingTime.Microseconds()) / 1000,
			}
		}
		if r.Kind == "" {
			r.Kind = st.Metadata["analyzer"]
		}
		return r, true
	}
	return Replica{}, false
}

// summarize sums the replicas of task into its Pool.
func summarize(task string, reps map[string]Replica) Pool {
	p := Pool{Task: task, Replicas: len(reps), Workers: make([]Replica, 0, len(reps))}
	var busyMS float64
	for _, r := range reps {
		p.Workers = append(p.Workers, r)
		p.Concurrency += r.Concurrency
		p.InFlight += r.InFlight
		p.Queued += r.Queued
		p.Done += r.Done
		p.Failed += r.Failed
		p.Refused += r.Refused
		p.Expired += r.Expired
		busyMS += r.AvgMS * float64(r.Done+r.Failed)
	}
	if n := p.Done + p.Failed; n > 0 {
		p.AvgMS = busyMS / float64(n)
	}
	slices.SortFunc(p.Workers, func(a, b Replica) int { return strings.Compare(a.ID, b.ID) })
	return p
}
