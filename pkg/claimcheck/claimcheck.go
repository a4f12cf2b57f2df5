// Package claimcheck keeps large images out of task messages. An image above
// a threshold is put in a JetStream Object Store bucket before the job fans
// out; every task message then carries only its reference in the Job-Object
// header (job.HeaderObject) and an empty body, the workers fetch the object,
// and the orchestrator deletes it when the job is done. The bucket's TTL
// removes what a crashed orchestrator left behind.
//
// NATS messages stay small (max_payload, 8 MB in nats.conf), while images
// may be as large as the orchestrator's body limit.
package claimcheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/visionmesh/vision/pkg/job"
)

// Errors of Fetch.
var (
	// ErrMissing means the object is not in the store: it expired (TTL),
	// was deleted, or never was. Fetching again will not help.
	ErrMissing = errors.New("image object missing or expired")
)

// Config names the bucket and says which images go there.
type Config struct {
	// Bucket is the Object Store bucket (stream OBJ_<Bucket>).
	Bucket string
	// TTL is how long an object is kept if nobody deletes it.
	TTL time.Duration
	// Threshold: images of more bytes go to the bucket; 0 disables.
	Threshold int64
}

// Defaults returns the default configuration: images above 4 MiB, well
// under nats.conf's 8 MB max_payload, kept at most ten minutes.
func Defaults() Config {
	return Config{Bucket: "vision_images", TTL: 10 * time.Minute, Threshold: 4 << 20}
}

// Validate reports whether c is usable. The zero Config is: it is off.
func (c Config) Validate() error {
	if c.Threshold < 0 {
		return errors.New("claimcheck: threshold must not be negative")
	}
	if !c.Enabled() {
		return nil
	}
	if err := job.ValidName(c.Bucket); err != nil {
		return fmt.Errorf("claimcheck: bucket: %w", err)
	}
	if c.TTL < time.Second {
		return fmt.Errorf("claimcheck: ttl %v: want at least a second", c.TTL)
	}
	return nil
}

// Enabled reports whether any image goes to the bucket.
func (c Config) Enabled() bool { return c.Threshold > 0 }

// Store is the orchestrator's side: it puts and deletes objects. It creates
// the bucket on first use (and again after a failure), so an orchestrator
// may start before JetStream is reachable. Safe for concurrent use.
type Store struct {
	cfg Config
	js  jetstream.JetStream

	mu  sync.Mutex
	obs jetstream.ObjectStore // nil until set up
}

// New returns a Store on nc; nothing is sent before first use.
func New(nc *nats.Conn, cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("claimcheck: %w", err)
	}
	return &Store{cfg: cfg, js: js}, nil
}

// Needed reports whether an image of size bytes goes to the bucket.
func (s *Store) Needed(size int) bool {
	return s.cfg.Enabled() && int64(size) > s.cfg.Threshold
}

func (s *Store) setup(ctx context.Context) (jetstream.ObjectStore, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.obs != nil {
		return s.obs, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	obs, err := s.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      s.cfg.Bucket,
		Description: "claim-checked images of running jobs",
		TTL:         s.cfg.TTL,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("claimcheck: bucket %s: %w", s.cfg.Bucket, err)
	}
	s.obs = obs
	return obs, nil
}

// Put stores data under name (a job id) and returns the job.HeaderObject
// value that refers to it.
func (s *Store) Put(ctx context.Context, name string, data []byte) (string, error) {
	obs, err := s.setup(ctx)
	if err != nil {
		return "", err
	}
	if _, err := obs.Put(ctx, jetstream.ObjectMeta{Name: name}, bytes.NewReader(data)); err != nil {
		s.reset(err)
		return "", fmt.Errorf("claimcheck: put %s: %w", name, err)
	}
	return job.ObjectRef(s.cfg.Bucket, name), nil
}

// Delete removes the object ref names; an object already gone is not an
// error.
func (s *Store) Delete(ctx context.Context, ref string) error {
	bucket, name, err := job.ParseObjectRef(ref)
	if err != nil {
		return fmt.Errorf("claimcheck: %w", err)
	}
	if bucket != s.cfg.Bucket {
		return fmt.Errorf("claimcheck: delete %s: not in bucket %s", ref, s.cfg.Bucket)
	}
	obs, err := s.setup(ctx)
	if err != nil {
		return err
	}
	if err := obs.Delete(ctx, name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		s.reset(err)
		return fmt.Errorf("claimcheck: delete %s: %w", ref, err)
	}
	return nil
}

// reset forgets the bucket handle when the bucket itself is gone, so the
// next call creates it again.
func (s *Store) reset(err error) {
	if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		s.mu.Lock()
		s.obs = nil
		s.mu.Unlock()
	}
}

// Fetcher is the worker's side: it reads objects. Safe for concurrent use.
type Fetcher struct {
	js jetstream.JetStream

	mu     sync.Mutex
	stores map[string]jetstream.ObjectStore
}

// NewFetcher returns a Fetcher on nc; nothing is sent before first use.
// nc needs the read permissions of nats.conf's worker users.
func NewFetcher(nc *nats.Conn) (*Fetcher, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("claimcheck: %w", err)
	}
	return &Fetcher{js: js, stores: map[string]jetstream.ObjectStore{}}, nil
}

// Fetch returns the bytes of the object ref (a job.HeaderObject value).
// Errors: ErrMissing when the object or its bucket is gone; anything else
// (NATS down, ctx ended, digest mismatch) may succeed when tried again.
func (f *Fetcher) Fetch(ctx context.Context, ref string) ([]byte, error) {
	bucket, name, err := job.ParseObjectRef(ref)
	if err != nil {
		return nil, fmt.Errorf("claimcheck: %w", err)
	}
	obs, err := f.store(ctx, bucket)
	if err == nil {
		var b []byte
		if b, err = obs.GetBytes(ctx, name); err == nil {
			return b, nil
		}
	}
	if errors.Is(err, jetstream.ErrObjectNotFound) || errors.Is(err, jetstream.ErrBucketNotFound) {
		f.forget(bucket)
		return nil, fmt.Errorf("claimcheck: fetch %s: %w", ref, ErrMissing)
	}
	return nil, fmt.Errorf("claimcheck: fetch %s: %w", ref, err)
}

func (f *Fetcher) store(ctx context.Context, bucket string) (jetstream.ObjectStore, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if obs, ok := f.stores[bucket]; ok {
		return obs, nil
	}
	obs, err := f.js.ObjectStore(ctx, bucket)
	if err != nil {
		return nil, err
	}
	f.stores[bucket] = obs
	return obs, nil
}

func (f *Fetcher) forget(bucket string) {
	f.mu.Lock()
	delete(f.stores, bucket)
	f.mu.Unlock()
}
