// Package jobs keeps async jobs in JetStream so that they outlive the HTTP
// request and the orchestrator process that accepted them.
//
// An accepted job is two records: its document (api.JobDoc) in the KV
// bucket vision_jobs under its id, and its image in the work-queue stream
// VISION_JOBS (subject <prefix>.jobs.submit). Every orchestrator replica
// runs a Processor on one shared durable pull consumer, so any replica takes
// any job; a job is acknowledged only after its done document is stored, so
// a replica that dies mid-job leaves it to be redelivered to another after
// AckWait. Documents and idempotency keys expire with the bucket's TTL.
package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/visionmesh/vision/pkg/api"
	"github.com/visionmesh/vision/pkg/job"
)

// Stream message headers beside job.HeaderID and job.HeaderContentType.
const (
	// HeaderTasks lists the job's tasks, comma-separated, in order.
	HeaderTasks = "Job-Tasks"
	// HeaderTimeout is the job's deadline as a Go duration, counted from
	// when a processor starts it.
	HeaderTimeout = "Job-Timeout"
	// HeaderMode is api.ModeConcurrent or api.ModeSerial.
	HeaderMode = "Job-Mode"
)

// Config names the JetStream assets and tunes the processor.
type Config struct {
	// Prefix is the subject prefix: jobs go to <Prefix>.jobs.submit.
	Prefix string
	// Stream is the work-queue stream holding accepted jobs.
	Stream string
	// Bucket is the KV bucket holding job documents.
	Bucket string
	// Consumer is the durable consumer every orchestrator shares.
	Consumer string
	// TTL is how long documents, idempotency keys and unprocessed jobs are kept.
	TTL time.Duration
	// AckWait is how long a taken job may stay silent before JetStream
	// gives it to another processor; a running job renews it (InProgress).
	AckWait time.Duration
	// MaxDeliver bounds deliveries of one job (crashes in a row).
	MaxDeliver int
	// Concurrency is jobs run at once by one processor.
	Concurrency int
	// CallbackSecret signs callback bodies (HMAC-SHA256).
	CallbackSecret string
	// CallbackAttempts and CallbackBackoff: POSTs of a callback at most,
	// and the pause before the second (doubling after).
	CallbackAttempts int
	CallbackBackoff  time.Duration
}

// Defaults returns the default configuration.
func Defaults() Config {
	return Config{
		Prefix:           job.DefaultPrefix,
		Stream:           "VISION_JOBS",
		Bucket:           "vision_jobs",
		Consumer:         "orchestrators",
		TTL:              24 * time.Hour,
		AckWait:          30 * time.Second,
		MaxDeliver:       5,
		Concurrency:      16,
		CallbackAttempts: 5,
		CallbackBackoff:  500 * time.Millisecond,
	}
}

// Validate reports whether c is usable.
func (c Config) Validate() error {
	if err := job.ValidPrefix(c.Prefix); err != nil {
		return fmt.Errorf("jobs: %w", err)
	}
	if c.Stream == "" || c.Bucket == "" || c.Consumer == "" {
		return errors.New("jobs: stream, bucket and consumer names must be set")
	}
	if c.TTL < time.Minute {
		return fmt.Errorf("jobs: ttl %v: want at least a minute", c.TTL)
	}
	if c.AckWait < time.Second {
		return fmt.Errorf("jobs: ack wait %v: want at least a second", c.AckWait)
	}
	if c.MaxDeliver < 1 || c.Concurrency < 1 || c.CallbackAttempts < 1 {
		return errors.New("jobs: max deliver, concurrency and callback attempts must be at least 1")
	}
	return nil
}

// Subject is where accepted jobs are published.
func (c Config) Subject() string { return c.Prefix + ".jobs.submit" }

// Store records jobs and reads their documents. It sets the stream and the
// bucket up on first use (and again after a failure), so an orchestrator
// may start before NATS is reachable. It implements api.JobStore.
type Store struct {
	cfg Config
	js  jetstream.JetStream

	mu sync.Mutex
	kv jetstream.KeyValue // nil until set up

	images ImageDeleter // nil: no claim-checked images
}

// ImageDeleter removes a claim-checked image (claimcheck.Store).
type ImageDeleter interface {
	// Delete removes the object ref; one already gone is not an error.
	Delete(ctx context.Context, ref string) error
}

// SetImages makes processors delete each job's claim-checked image (its
// Job-Object header) once the job is done; call it before Process.
func (s *Store) SetImages(d ImageDeleter) { s.images = d }

var _ api.JobStore = (*Store)(nil)

// New returns a Store on nc; nothing is sent before first use.
func New(nc *nats.Conn, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	return &Store{cfg: cfg, js: js}, nil
}

// setup creates or updates the stream and the bucket once.
func (s *Store) setup(ctx context.Context) (jetstream.KeyValue, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kv != nil {
		return s.kv, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        s.cfg.Stream,
		Description: "accepted async jobs: the image, headers say what to run",
		Subjects:    []string{s.cfg.Subject()},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      s.cfg.TTL,
		Duplicates:  2 * time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: stream %s: %v", api.ErrJobsUnavailable, s.cfg.Stream, err)
	}
	kv, err := s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      s.cfg.Bucket,
		Description: "async job documents and idempotency keys",
		TTL:         s.cfg.TTL,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: bucket %s: %v", api.ErrJobsUnavailable, s.cfg.Bucket, err)
	}
	s.kv = kv
	return kv, nil
}

// Submit records req: the idempotency key (if any), the pending document,
// then the job in the stream. It returns when all three are stored.
func (s *Store) Submit(ctx context.Context, req api.JobRequest) (api.JobDoc, bool, error) {
	kv, err := s.setup(ctx)
	if err != nil {
		return api.JobDoc{}, false, err
	}
	id := req.Doc.JobID
	var idem string
	if req.IdempotencyKey != "" {
		sum := sha256.Sum256([]byte(req.IdempotencyKey))
		idem = "idem." + hex.EncodeToString(sum[:])
		if _, err := kv.Create(ctx, idem, []byte(id)); errors.Is(err, jetstream.ErrKeyExists) {
			doc, err := s.earlier(ctx, kv, idem)
			return doc, false, err
		} else if err != nil {
			return api.JobDoc{}, false, unavailable("create %s", idem, err)
		}
	}
	undo := func() {
		if idem != "" {
			_ = kv.Purge(context.WithoutCancel(ctx), idem)
		}
	}
	if err := s.put(ctx, kv, req.Doc); err != nil {
		undo()
		return api.JobDoc{}, false, err
	}
	m := nats.NewMsg(s.cfg.Subject())
	for k, v := range req.Header {
		m.Header[k] = v
	}
	m.Header.Set(jetstream.MsgIDHeader, id) // a retried publish is not a second job
	m.Header.Set(job.HeaderID, id)
	m.Header.Set(job.HeaderContentType, req.Doc.Image.ContentType)
	m.Header.Set(HeaderTasks, strings.Join(req.Tasks, ","))
	m.Header.Set(HeaderTimeout, req.Timeout.String())
	m.Header.Set(HeaderMode, req.Doc.Mode)
	m.Data = req.Data
	if _, err := s.js.PublishMsg(ctx, m); err != nil {
		undo()
		_ = kv.Purge(context.WithoutCancel(ctx), id)
		return api.JobDoc{}, false, unavailable("publish %s", m.Subject, err)
	}
	return req.Doc, true, nil
}

// earlier returns the document of the job an idempotency key points to;
// the first submission may still be storing it.
func (s *Store) earlier(ctx context.Context, kv jetstream.KeyValue, idem string) (api.JobDoc, error) {
	e, err := kv.Get(ctx, idem)
	if err != nil {
		return api.JobDoc{}, unavailable("get %s", idem, err)
	}
	id := string(e.Value())
	deadline := time.Now().Add(5 * time.Second)
	for {
		doc, err := s.Get(ctx, id)
		if !errors.Is(err, api.ErrJobNotFound) || time.Now().After(deadline) {
			return doc, err
		}
		select {
		case <-ctx.Done():
			return api.JobDoc{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Get returns the document of job id.
func (s *Store) Get(ctx context.Context, id string) (api.JobDoc, error) {
	if !validID(id) {
		return api.JobDoc{}, fmt.Errorf("%w: %q", api.ErrJobNotFound, id)
	}
	kv, err := s.setup(ctx)
	if err != nil {
		return api.JobDoc{}, err
	}
	e, err := kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return api.JobDoc{}, fmt.Errorf("%w: %s", api.ErrJobNotFound, id)
	}
	if err != nil {
		return api.JobDoc{}, unavailable("get %s", id, err)
	}
	return decode(e)
}

// Watch implements api.JobStore.
func (s *Store) Watch(ctx context.Context, id string) (<-chan api.JobDoc, error) {
	if _, err := s.Get(ctx, id); err != nil {
		return nil, err
	}
	kv, err := s.setup(ctx)
	if err != nil {
		return nil, err
	}
	w, err := kv.Watch(ctx, id)
	if err != nil {
		return nil, unavailable("watch %s", id, err)
	}
	ch := make(chan api.JobDoc)
	go func() {
		defer close(ch)
		defer w.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil || e.Operation() != jetstream.KeyValuePut {
					continue // end of the initial values, or a delete
				}
				doc, err := decode(e)
				if err != nil {
					continue
				}
				select {
				case ch <- doc:
				case <-ctx.Done():
					return
				}
				if doc.Status == api.JobDone {
					return
				}
			}
		}
	}()
	return ch, nil
}

func (s *Store) put(ctx context.Context, kv jetstream.KeyValue, doc api.JobDoc) error {
	b, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("jobs: encode %s: %w", doc.JobID, err)
	}
	if _, err := kv.Put(ctx, doc.JobID, b); err != nil {
		return unavailable("put %s", doc.JobID, err)
	}
	return nil
}

func decode(e jetstream.KeyValueEntry) (api.JobDoc, error) {
	var doc api.JobDoc
	if err := json.Unmarshal(e.Value(), &doc); err != nil {
		return doc, fmt.Errorf("jobs: decode %s: %w", e.Key(), err)
	}
	return doc, nil
}

// validID accepts what a KV key may be, short of the idempotency keys'
// dots: job ids are uuids.
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

func unavailable(format, arg string, err error) error {
	return fmt.Errorf("%w: "+format+": %v", api.ErrJobsUnavailable, arg, err)
}

// parseTasks splits a HeaderTasks value.
func parseTasks(s string) []string {
	var out []string
	for _, t := range strings.Split(s, ",") {
		if t != "" {
			out = append(out, t)
		}
	}
	return out
}

// attempt is a delivery count as an int.
func attempt(m jetstream.Msg) int {
	md, err := m.Metadata()
	if err != nil {
		return 1
	}
	return int(md.NumDelivered)
}
