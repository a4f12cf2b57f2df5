// Package analyzer defines what a task worker runs on each image: an Analyzer
// takes the image bytes exactly as the client sent them and returns a result
// that the worker encodes as JSON in its reply.
//
// A new task is a small Go file: a type with an Analyze method (or a Func),
// wired into the worker's table of analyzers by name.
package analyzer

import (
	"context"
	"errors"
	"fmt"
)

// Errors an Analyzer may return (possibly wrapped). The worker maps them to
// the error codes of its NATS error reply; any other error is a 500.
var (
	// ErrBadImage means the image could not be decoded or is not acceptable
	// (too many pixels, unsupported format). Reply code 422.
	ErrBadImage = errors.New("bad image")
	// ErrUnavailable means the analyzer cannot work right now (a model is
	// not loaded, a backend is down). Reply code 503, so the orchestrator
	// may try another replica.
	ErrUnavailable = errors.New("analyzer unavailable")
)

// Input is one job as an analyzer sees it.
type Input struct {
	// JobID is the orchestrator's job id (a uuid), for logs.
	JobID string
	// Task is the task name the job was sent for (vehicle, plate, face, ...).
	Task string
	// ContentType is the image's media type as the orchestrator sniffed it
	// (image/jpeg, image/png, image/gif).
	ContentType string
	// Data holds the image bytes as uploaded. Analyzers must not modify or
	// retain it after Analyze returns.
	Data []byte
}

// Analyzer analyses one image. Analyze must honour ctx (its deadline is the
// job's deadline) and be safe for concurrent use: a worker calls it from as
// many goroutines as its -concurrency. It must also be safe to run twice on
// the same job: after a lost worker the orchestrator may dispatch it again.
//
// The returned value is encoded with encoding/json. Errors wrapping
// ErrBadImage or ErrUnavailable get the matching reply code; others are 500.
type Analyzer interface {
	Analyze(ctx context.Context, in Input) (any, error)
}

// Func adapts an ordinary function to the Analyzer interface.
type Func func(ctx context.Context, in Input) (any, error)

// Analyze calls f(ctx, in).
func (f Func) Analyze(ctx context.Context, in Input) (any, error) { return f(ctx, in) }

// BadImagef returns an error wrapping ErrBadImage with a formatted message.
func BadImagef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadImage, fmt.Sprintf(format, args...))
}
