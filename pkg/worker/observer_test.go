package worker_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/visionmesh/vision/pkg/analyzer"
	"github.com/visionmesh/vision/pkg/job"
	"github.com/visionmesh/vision/pkg/worker"
)

type jobs struct {
	mu   sync.Mutex
	seen []string // "task code"
	took []time.Duration
}

func (j *jobs) ObserveJob(task, code string, took time.Duration) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.seen = append(j.seen, task+" "+code)
	j.took = append(j.took, took)
}

func TestObserver(t *testing.T) {
	url := startServer(t)
	a := analyzer.Func(func(ctx context.Context, in analyzer.Input) (any, error) {
		time.Sleep(2 * time.Millisecond)
		if in.JobID == "bad" {
			return nil, errors.New("no")
		}
		return map[string]bool{"ok": true}, nil
	})
	w, err := worker.New(connect(t, url), a, worker.Defaults("face"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	o := &jobs{}
	w.SetObserver(o)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Shutdown(context.Background()) })

	nc := connect(t, url)
	for _, id := range []string{"good", "bad"} {
		final(t, send(t, nc, id, nil))
	}
	// Refused before the analyzer ran: not observed.
	final(t, send(t, nc, "late", map[string]string{job.HeaderDeadline: job.FormatDeadline(time.Now().Add(-time.Second))}))

	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.seen) != 2 || o.seen[0] != "face " || o.seen[1] != "face "+job.CodeFailed {
		t.Fatalf("observed: got %q, want [%q %q]", o.seen, "face ", "face "+job.CodeFailed)
	}
	for i, d := range o.took {
		if d < 2*time.Millisecond {
			t.Errorf("job %d took %v, want at least the analyzer's 2ms", i, d)
		}
	}
}
