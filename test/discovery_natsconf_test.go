package test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/visionmesh/vision/pkg/analyzer"
	"github.com/visionmesh/vision/pkg/discovery"
	"github.com/visionmesh/vision/pkg/worker"
)

// GET /v1/workers' discovery works within nats.conf's permissions: the
// orchestrator user asks $SRV.STATS.<task> and gets the replies of the real
// workers (each logged in as its task's user) on its _INBOX.orch prefix.
func TestNatsConfWorkerDiscovery(t *testing.T) {
	url, pw := newNatsConfServer(t)
	ids := map[string]string{}
	var werrs []*natsConfErrs
	for _, task := range []string{"vehicle", "plate"} {
		nc, errs := dialNatsConf(t, url, "worker-"+task, pw["worker-"+task])
		werrs = append(werrs, errs)
		a := analyzer.Func(func(ctx context.Context, in analyzer.Input) (any, error) { return map[string]bool{}, nil })
		w, err := worker.New(nc, a, worker.Defaults(task), slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = w.Shutdown(context.Background()) })
		flushNatsConf(t, nc)
		ids[task] = w.ID()
	}

	orch, oerrs := dialNatsConfOrchestrator(t, url, pw)
	d, err := discovery.New(orch, discovery.Defaults([]string{"vehicle", "plate", "face"}))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := d.Pools(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Tasks {
		want := 0
		if ids[p.Task] != "" {
			want = 1
		}
		if p.Replicas != want || (want == 1 && p.Workers[0].ID != ids[p.Task]) {
			t.Errorf("%s: got %d replicas %+v, want %d (%s)", p.Task, p.Replicas, p.Workers, want, ids[p.Task])
		}
	}
	flushNatsConf(t, orch)
	if errs := oerrs.all(); len(errs) > 0 {
		t.Errorf("orchestrator errors: %v", errs)
	}
	for _, we := range werrs {
		if errs := we.all(); len(errs) > 0 {
			t.Errorf("worker errors: %v", errs)
		}
	}
}
