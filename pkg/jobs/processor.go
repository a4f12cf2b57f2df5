package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/visionmesh/vision/pkg/api"
	"github.com/visionmesh/vision/pkg/gather"
	"github.com/visionmesh/vision/pkg/job"
)

// Gatherer runs one job across its tasks (gather.Gatherer).
type Gatherer interface {
	Run(ctx context.Context, j gather.Job) []gather.Outcome
}

var _ Gatherer = (*gather.Gatherer)(nil)

// Processor takes jobs from the shared consumer and runs them.
type Processor struct {
	st     *Store
	g      Gatherer
	log    *slog.Logger
	client *http.Client // callbacks

	// intake ends when Shutdown starts: no job is taken after it. ctx
	// ends when Shutdown gives up waiting: running jobs are given back.
	intake     context.Context
	stopIntake context.CancelFunc
	ctx        context.Context
	cancel     context.CancelFunc
	loops      sync.WaitGroup
}

// Process starts cfg.Concurrency loops that take jobs from the durable
// consumer and run them with g, until Shutdown.
func (s *Store) Process(g Gatherer, log *slog.Logger) *Processor {
	p := &Processor{st: s, g: g, log: log, client: &http.Client{Timeout: 10 * time.Second}}
	p.intake, p.stopIntake = context.WithCancel(context.Background())
	p.ctx, p.cancel = context.WithCancel(context.Background())
	for range s.cfg.Concurrency {
		p.loops.Add(1)
		go p.loop()
	}
	return p
}

// Shutdown stops taking jobs and waits for running ones until ctx ends;
// then it gives them back (Nak) for another replica to run.
func (p *Processor) Shutdown(ctx context.Context) error {
	stopped := make(chan struct{})
	go func() {
		p.loops.Wait()
		close(stopped)
	}()
	p.stopIntake()
	select {
	case <-stopped:
		p.cancel()
		return nil
	case <-ctx.Done():
		p.cancel()
		<-stopped
		return fmt.Errorf("jobs: shutdown: %w", ctx.Err())
	}
}

// consumer creates or binds the shared durable consumer.
func (s *Store) consumer(ctx context.Context) (jetstream.Consumer, error) {
	if _, err := s.setup(ctx); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := s.js.CreateOrUpdateConsumer(ctx, s.cfg.Stream, jetstream.ConsumerConfig{
		Durable:       s.cfg.Consumer,
		Description:   "every orchestrator replica takes jobs here",
		FilterSubject: s.cfg.Subject(),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.cfg.AckWait,
		MaxDeliver:    s.cfg.MaxDeliver,
		MaxAckPending: -1,
	})
	if err != nil {
		return nil, unavailable("consumer %s", s.cfg.Consumer, err)
	}
	return c, nil
}

func (p *Processor) stopping() bool { return p.intake.Err() != nil }

// pause waits d unless intake stops first.
func (p *Processor) pause(d time.Duration) { p.pauseCtx(p.intake, d) }

// pauseCtx waits d and reports whether ctx is still live.
func (p *Processor) pauseCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (p *Processor) loop() {
	defer p.loops.Done()
	var cons jetstream.Consumer
	backoff := time.Second // while JetStream is unreachable: doubling, at most 30s
	for {
		if p.stopping() {
			return
		}
		if cons == nil {
			c, err := p.st.consumer(p.intake)
			if err != nil {
				if backoff == time.Second {
					p.log.Warn("jobs: consumer not ready, retrying", "err", err)
				}
				p.pause(backoff)
				backoff = min(2*backoff, 30*time.Second)
				continue
			}
			cons, backoff = c, time.Second
		}
		fctx, cancel := context.WithTimeout(p.intake, 5*time.Second)
		m, err := cons.Next(jetstream.FetchContext(fctx))
		cancel()
		if err != nil {
			if p.stopping() || errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
				continue
			}
			p.log.Warn("jobs: fetch", "err", err)
			if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) {
				cons = nil
			}
			p.pause(time.Second)
			continue
		}
		p.handle(m)
	}
}

// handle runs one delivered job and acknowledges it once its done document
// is stored (and its callback, if any, has been tried).
func (p *Processor) handle(m jetstream.Msg) {
	ctx := p.ctx
	h := m.Headers()
	id := h.Get(job.HeaderID)
	log := p.log.With("job_id", id)
	kv, err := p.st.setup(ctx)
	if err != nil {
		log.Warn("jobs: store", "err", err)
		_ = m.NakWithDelay(time.Second)
		return
	}
	doc, err := p.st.Get(ctx, id)
	if errors.Is(err, api.ErrJobNotFound) {
		log.Warn("jobs: no document (expired?): dropping the job")
		p.dropImage(ctx, h, log)
		_ = m.Term()
		return
	}
	if err != nil {
		log.Warn("jobs: get", "err", err)
		_ = m.NakWithDelay(time.Second)
		return
	}

	stop := p.keepAlive(m)
	defer stop()
	if doc.Status != api.JobDone {
		if !p.run(ctx, kv, m, &doc, log) {
			_ = m.Nak() // shutting down: another replica takes it
			return
		}
	}
	p.dropImage(ctx, h, log)
	if doc.CallbackURL != "" && doc.Callback == nil {
		doc.Callback = p.callback(ctx, doc, log)
		if err := p.st.put(ctx, kv, doc); err != nil {
			log.Warn("jobs: store callback report", "err", err)
		}
	}
	if err := m.DoubleAck(ctx); err != nil {
		log.Warn("jobs: ack", "err", err)
	}
}

// run runs the job, storing each task's outcome as it lands and the done
// document at the end. It reports false when the processor is stopping
// before the job is done.
func (p *Processor) run(ctx context.Context, kv jetstream.KeyValue, m jetstream.Msg, doc *api.JobDoc, log *slog.Logger) bool {
	h := m.Headers()
	timeout, err := time.ParseDuration(h.Get(HeaderTimeout))
	if err != nil || timeout <= 0 {
		timeout = 5 * time.Second
	}
	now := time.Now().UTC()
	doc.Status, doc.StartedAt, doc.Attempt = api.JobRunning, &now, attempt(m)
	if err := p.st.put(ctx, kv, *doc); err != nil {
		log.Warn("jobs: store running", "err", err)
	}

	// Outcomes land on Run's goroutine; a writer stores them in order so
	// Run never waits for the KV.
	var mu sync.Mutex
	outs := make(chan gather.Outcome, len(doc.Tasks)+1)
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for o := range outs {
			mu.Lock()
			doc.Tasks[o.Task] = api.Report(o)
			snap := *doc
			snap.Tasks = clone(doc.Tasks)
			mu.Unlock()
			if err := p.st.put(ctx, kv, snap); err != nil {
				log.Warn("jobs: store outcome", "task", o.Task, "err", err)
			}
		}
	}()
	hdr := nats.Header{}
	if tp := h.Get(job.HeaderTraceParent); tp != "" {
		hdr.Set(job.HeaderTraceParent, tp)
		if ts := h.Get(job.HeaderTraceState); ts != "" {
			hdr.Set(job.HeaderTraceState, ts)
		}
	}
	if ref := h.Get(job.HeaderObject); ref != "" {
		hdr.Set(job.HeaderObject, ref) // claim-checked: the payload is empty
	}
	start := time.Now()
	res := p.g.Run(ctx, gather.Job{
		ID:          doc.JobID,
		Tasks:       parseTasks(h.Get(HeaderTasks)),
		Data:        m.Data(),
		ContentType: h.Get(job.HeaderContentType),
		Timeout:     timeout,
		Serial:      h.Get(HeaderMode) == api.ModeSerial,
		Header:      hdr,
		OnOutcome:   func(o gather.Outcome) { outs <- o },
	})
	close(outs)
	<-wrote
	if ctx.Err() != nil {
		return false
	}
	done := time.Now().UTC()
	doc.Tasks = api.Reports(res)
	doc.Status, doc.DoneAt = api.JobDone, &done
	doc.ElapsedMS = float64(time.Since(start).Microseconds()) / 1000
	doc.HTTPStatus = api.StatusFor(res)
	for {
		err := p.st.put(ctx, kv, *doc)
		if err == nil {
			break
		}
		log.Warn("jobs: store done document", "err", err)
		if !p.pauseCtx(ctx, time.Second) {
			return false
		}
	}
	log.Info("job done", "status", doc.HTTPStatus, "attempt", doc.Attempt, "ms", doc.ElapsedMS)
	return true
}

// dropImage deletes the job's claim-checked image, if it has one; the
// bucket's TTL removes it should this fail.
func (p *Processor) dropImage(ctx context.Context, h nats.Header, log *slog.Logger) {
	ref := h.Get(job.HeaderObject)
	if ref == "" || p.st.images == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := p.st.images.Delete(ctx, ref); err != nil {
		log.Warn("jobs: delete image", "object", ref, "err", err)
	}
}

// keepAlive tells JetStream the job is being worked on, every third of
// AckWait, until the returned stop is called.
func (p *Processor) keepAlive(m jetstream.Msg) (stop func()) {
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(p.st.cfg.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				_ = m.InProgress()
			}
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}

func clone(m map[string]api.TaskReport) map[string]api.TaskReport {
	c := make(map[string]api.TaskReport, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
