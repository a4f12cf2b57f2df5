// Package simulate provides an analyzer that pretends to work: it waits for
// a configured time (with optional jitter), fails at a configured rate and
// returns a result that says it is simulated. It stands in for real models in
// load tests and in the serial-versus-concurrent demonstration.
package simulate

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/visionmesh/vision/pkg/analyzer"
)

// ErrSimulatedFailure is returned for the share of jobs picked by FailRate.
var ErrSimulatedFailure = errors.New("simulated failure")

// Config sets how a simulated task behaves.
type Config struct {
	// Work is how long each job takes.
	Work time.Duration
	// Jitter adds a uniformly random extra time in [0, Jitter).
	Jitter time.Duration
	// FailRate is the probability in [0, 1] that a job fails.
	FailRate float64
}

// Validate reports whether c is usable.
func (c Config) Validate() error {
	if c.Work < 0 || c.Jitter < 0 {
		return fmt.Errorf("simulate: work and jitter must not be negative")
	}
	if c.FailRate < 0 || c.FailRate > 1 {
		return fmt.Errorf("simulate: fail rate %v not in [0, 1]", c.FailRate)
	}
	return nil
}

// Analyzer is a simulated task.
type Analyzer struct {
	cfg Config
}

// New returns a simulated analyzer, or an error if cfg is invalid.
func New(cfg Config) (*Analyzer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Analyzer{cfg: cfg}, nil
}

var _ analyzer.Analyzer = (*Analyzer)(nil)

// Result is what a simulated job returns.
type Result struct {
	Simulated  bool     `json:"simulated"`
	Task       string   `json:"task"`
	WorkMS     float64  `json:"work_ms"`
	Bytes      int      `json:"bytes"`
	Detections []string `json:"detections"`
}

// Analyze waits for the configured work time, or until ctx is done.
func (a *Analyzer) Analyze(ctx context.Context, in analyzer.Input) (any, error) {
	d := a.cfg.Work
	if a.cfg.Jitter > 0 {
		d += rand.N(a.cfg.Jitter)
	}
	if d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
	if a.cfg.FailRate > 0 && rand.Float64() < a.cfg.FailRate {
		return nil, ErrSimulatedFailure
	}
	return Result{
		Simulated:  true,
		Task:       in.Task,
		WorkMS:     float64(d) / float64(time.Millisecond),
		Bytes:      len(in.Data),
		Detections: []string{},
	}, nil
}
