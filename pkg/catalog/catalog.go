// Package catalog builds analyzers by kind name from command-line flags, so
// the worker binary and the orchestrator's dev mode can offer every analyzer
// the project ships without knowing their packages.
package catalog

import (
	"errors"
	"flag"
	"fmt"
	"sort"
	"time"

	"github.com/visionmesh/vision/pkg/analyzer"
	"github.com/visionmesh/vision/pkg/analyzer/simulate"
)

// ErrUnknownKind is returned by New for a kind the catalog does not have.
var ErrUnknownKind = errors.New("unknown analyzer kind")

// Options holds the settings of every analyzer kind; each kind reads its own.
type Options struct {
	Simulate simulate.Config
}

// RegisterFlags binds the analyzers' flags to fs, with their defaults.
func (o *Options) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&o.Simulate.Work, "work", 200*time.Millisecond, "simulate: time each job takes")
	fs.DurationVar(&o.Simulate.Jitter, "jitter", 0, "simulate: extra random time in [0, jitter)")
	fs.Float64Var(&o.Simulate.FailRate, "fail-rate", 0, "simulate: probability in [0,1] that a job fails")
}

type builder func(o Options) (analyzer.Analyzer, error)

var kinds = map[string]builder{
	"simulate": func(o Options) (analyzer.Analyzer, error) { return simulate.New(o.Simulate) },
}

// Kinds lists the analyzer kinds New accepts, sorted.
func Kinds() []string {
	out := make([]string, 0, len(kinds))
	for k := range kinds {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// New builds the analyzer of the given kind for task.
func New(kind, task string, o Options) (analyzer.Analyzer, error) {
	b, ok := kinds[kind]
	if !ok {
		return nil, fmt.Errorf("%w %q (have %v)", ErrUnknownKind, kind, Kinds())
	}
	a, err := b(o)
	if err != nil {
		return nil, fmt.Errorf("analyzer %s for task %s: %w", kind, task, err)
	}
	return a, nil
}

// DefaultKind is the analyzer kind a task runs when none is given.
func DefaultKind(task string) string {
	return "simulate"
}
