package discovery_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/visionmesh/vision/pkg/analyzer"
	"github.com/visionmesh/vision/pkg/discovery"
	"github.com/visionmesh/vision/pkg/embednats"
	"github.com/visionmesh/vision/pkg/gather"
	"github.com/visionmesh/vision/pkg/testimage"
	"github.com/visionmesh/vision/pkg/worker"
)

func startServer(t testing.TB, tweak func(*server.Options)) string {
	t.Helper()
	s, err := embednats.Start(embednats.Options{Port: -1, Tweak: tweak})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s.ClientURL()
}

func connect(t testing.TB, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// echo is an analyzer that answers at once.
var echo = analyzer.Func(func(ctx context.Context, in analyzer.Input) (any, error) {
	return map[string]int{"bytes": len(in.Data)}, nil
})

// startWorker starts one replica of task on its own connection.
func startWorker(t testing.TB, url, task string, tweak func(*worker.Config)) *worker.Worker {
	t.Helper()
	cfg := worker.Defaults(task)
	if tweak != nil {
		tweak(&cfg)
	}
	nc := connect(t, url)
	w, err := worker.New(nc, echo, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Shutdown(context.Background()) })
	// The server has the replica's subscriptions once a flush returns.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return w
}

func newDiscoverer(t testing.TB, nc discovery.Conn, tweak func(*discovery.Config)) *discovery.Discoverer {
	t.Helper()
	cfg := discovery.Defaults([]string{"vehicle", "plate", "face"})
	cfg.MaxAge = 0
	if tweak != nil {
		tweak(&cfg)
	}
	d, err := discovery.New(nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// runJobs sends n jobs of every task through a real gatherer.
func runJobs(t testing.TB, nc *nats.Conn, n int, tasks ...string) {
	t.Helper()
	g, err := gather.New(nc, gather.Defaults())
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	img := testimage.JPEG(64, 48, 90, 1)
	for i := range n {
		outs := g.Run(context.Background(), gather.Job{
			ID: "job-" + string(rune('a'+i)), Tasks: tasks, Data: img,
			ContentType: "image/jpeg", Timeout: 5 * time.Second,
		})
		for _, o := range outs {
			if o.Status != gather.StatusOK {
				t.Fatalf("job %d task %s: got %s (%v), want ok", i, o.Task, o.Status, o.Error)
			}
		}
	}
}

func pool(t testing.TB, rep *discovery.Report, task string) discovery.Pool {
	t.Helper()
	for _, p := range rep.Tasks {
		if p.Task == task {
			return p
		}
	}
	t.Fatalf("no pool %s in %+v", task, rep.Tasks)
	return discovery.Pool{}
}

func TestPools(t *testing.T) {
	url := startServer(t, nil)
	v1 := startWorker(t, url, "vehicle", func(c *worker.Config) { c.Concurrency = 2 })
	v2 := startWorker(t, url, "vehicle", func(c *worker.Config) { c.Concurrency = 3 })
	p1 := startWorker(t, url, "plate", nil)
	// Another deployment's vehicle pool on the same server: not ours.
	startWorker(t, url, "vehicle", func(c *worker.Config) { c.Prefix = "staging" })

	nc := connect(t, url, nats.CustomInboxPrefix("_INBOX.orch"))
	runJobs(t, nc, 4, "vehicle", "plate")

	d := newDiscoverer(t, nc, nil)
	start := time.Now()
	rep, err := d.Pools(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Every task answered (face with no-responders), so the round ends
	// after the idle time, well before the timeout.
	if took := time.Since(start); took > 900*time.Millisecond {
		t.Errorf("round took %v, want it ended by the idle time", took)
	}
	if got := len(rep.Tasks); got != 3 {
		t.Fatalf("got %d pools, want 3", got)
	}
	for i, want := range []string{"vehicle", "plate", "face"} {
		if rep.Tasks[i].Task != want {
			t.Errorf("pool %d: got %s, want %s", i, rep.Tasks[i].Task, want)
		}
	}

	v := pool(t, rep, "vehicle")
	var ids []string
	for _, w := range v.Workers {
		ids = append(ids, w.ID)
	}
	want := []string{v1.ID(), v2.ID()}
	slices.Sort(want)
	if v.Replicas != 2 || !slices.Equal(ids, want) {
		t.Errorf("vehicle replicas: got %d %v, want 2 %v", v.Replicas, ids, want)
	}
	if v.Concurrency != 5 {
		t.Errorf("vehicle concurrency: got %d, want 5", v.Concurrency)
	}
	if v.Done != 4 || v.Failed != 0 || v.InFlight != 0 {
		t.Errorf("vehicle counters: got done %d failed %d in flight %d, want 4 0 0", v.Done, v.Failed, v.InFlight)
	}
	if v.AvgMS <= 0 {
		t.Errorf("vehicle avg: got %v, want > 0", v.AvgMS)
	}

	p := pool(t, rep, "plate")
	if p.Replicas != 1 || p.Workers[0].ID != p1.ID() || p.Done != 4 || p.Workers[0].Kind != "simulate" {
		t.Errorf("plate: got %+v, want one replica %s with 4 jobs done", p, p1.ID())
	}
	if f := pool(t, rep, "face"); f.Replicas != 0 || f.Workers == nil {
		t.Errorf("face: got %d replicas (workers %v), want 0 and an empty list", f.Replicas, f.Workers)
	}
}

// TestNoWorkers: with nobody serving any task every request gets
// no-responders and the round ends at once, not at the timeout.
func TestNoWorkers(t *testing.T) {
	nc := connect(t, startServer(t, nil))
	d := newDiscoverer(t, nc, func(c *discovery.Config) { c.Timeout = 5 * time.Second })
	start := time.Now()
	rep, err := d.Pools(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("round took %v, want about the idle time", took)
	}
	for _, p := range rep.Tasks {
		if p.Replicas != 0 {
			t.Errorf("%s: got %d replicas, want 0", p.Task, p.Replicas)
		}
	}
}

// TestPermissions runs discovery as a user that may only publish to $SRV.>
// and subscribe under _INBOX.orch.>, as nats.conf's orchestrator.
func TestPermissions(t *testing.T) {
	url := startServer(t, func(o *server.Options) {
		o.Users = []*server.User{
			{Username: "orch", Password: "o", Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: []string{"vision.task.>", "$SRV.>"}},
				Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.orch.>"}},
			}},
			{Username: "worker", Password: "w", Permissions: &server.Permissions{
				Subscribe: &server.SubjectPermission{Allow: []string{"vision.task.face face", "$SRV.>"}},
				Response:  &server.ResponsePermission{MaxMsgs: -1, Expires: time.Minute},
			}},
		}
	})
	cfg := worker.Defaults("face")
	wnc := connect(t, url, nats.UserInfo("worker", "w"))
	w, err := worker.New(wnc, echo, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Shutdown(context.Background()) })
	if err := wnc.Flush(); err != nil {
		t.Fatal(err)
	}

	var asyncErr atomic.Value
	nc := connect(t, url, nats.UserInfo("orch", "o"), nats.CustomInboxPrefix("_INBOX.orch"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { asyncErr.Store(err) }))
	d := newDiscoverer(t, nc, func(c *discovery.Config) { c.Tasks = []string{"face"} })
	rep, err := d.Pools(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if p := pool(t, rep, "face"); p.Replicas != 1 || p.Workers[0].ID != w.ID() {
		t.Errorf("face: got %+v, want replica %s", p, w.ID())
	}
	if err := nc.Flush(); err != nil || asyncErr.Load() != nil {
		t.Errorf("permission errors: got %v %v, want none", err, asyncErr.Load())
	}
}

// TestShared: callers within MaxAge share one round's report.
func TestShared(t *testing.T) {
	nc := connect(t, startServer(t, nil))
	d := newDiscoverer(t, nc, func(c *discovery.Config) { c.MaxAge = time.Minute })
	a, err := d.Pools(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b, err := d.Pools(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Errorf("got two reports, want the first one again")
	}
}

func TestHandler(t *testing.T) {
	url := startServer(t, nil)
	w := startWorker(t, url, "plate", nil)
	nc := connect(t, url)
	srv := httptest.NewServer(discovery.Handler(newDiscoverer(t, nc, nil)))
	t.Cleanup(srv.Close)

	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	var rep discovery.Report
	err = json.NewDecoder(resp.Body).Decode(&rep)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("got %d %s, want 200 application/json", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if p := pool(t, &rep, "plate"); p.Replicas != 1 || p.Workers[0].ID != w.ID() {
		t.Errorf("plate: got %+v, want replica %s", p, w.ID())
	}

	nc.Close()
	resp, err = http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ Error, Code string }
	_ = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || body.Code != "nats_unavailable" || resp.Header.Get("Retry-After") == "" {
		t.Errorf("closed connection: got %d %+v, want 503 nats_unavailable with Retry-After", resp.StatusCode, body)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tweak func(*discovery.Config)
	}{
		{"no tasks", func(c *discovery.Config) { c.Tasks = nil }},
		{"bad task", func(c *discovery.Config) { c.Tasks = []string{"a.b"} }},
		{"bad prefix", func(c *discovery.Config) { c.Prefix = "" }},
		{"zero timeout", func(c *discovery.Config) { c.Timeout = 0 }},
		{"zero idle", func(c *discovery.Config) { c.Idle = 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := discovery.Defaults([]string{"face"})
			tc.tweak(&cfg)
			if err := cfg.Validate(); err == nil {
				t.Errorf("got nil, want an error")
			}
		})
	}
	if _, err := discovery.New(nil, discovery.Config{}); err == nil || errors.Is(err, discovery.ErrNotConnected) {
		t.Errorf("New with a zero config: got %v, want a validation error", err)
	}
}
