package gather_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.uber.org/goleak"

	"github.com/visionmesh/vision/pkg/embednats"
	"github.com/visionmesh/vision/pkg/gather"
	"github.com/visionmesh/vision/pkg/job"
)

func newConn(t testing.TB) *nats.Conn {
	t.Helper()
	s, err := embednats.Start(embednats.Options{Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return connect(t, s.ClientURL())
}

func connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// responder answers jobs of task after work with a JSON body, sending
// heartbeats at the requested interval. It is a bare NATS subscriber, so
// gather is tested on its own.
type responder struct {
	work     time.Duration
	reply    func(m *nats.Msg) *nats.Msg // nil: a JSON ok result
	swallow  func(m *nats.Msg) bool      // true: pretend to die with it
	received atomic.Int64
}

func serve(t testing.TB, nc *nats.Conn, task string, r *responder) {
	t.Helper()
	sub, err := nc.QueueSubscribe(job.Subject(job.DefaultPrefix, task), task, func(m *nats.Msg) {
		r.received.Add(1)
		if r.swallow != nil && r.swallow(m) {
			return
		}
		go func() {
			if d, _ := time.ParseDuration(m.Header.Get(job.HeaderHeartbeat)); d > 0 {
				tk := time.NewTicker(d)
				defer tk.Stop()
				end := time.After(r.work)
			beat:
				for {
					select {
					case <-tk.C:
						_ = m.RespondMsg(&nats.Msg{Header: nats.Header{job.HeaderStatus: {job.StatusWorking}}})
					case <-end:
						break beat
					}
				}
			} else {
				time.Sleep(r.work) // the simulated work itself, not synchronisation
			}
			out := &nats.Msg{Data: []byte(`{"task":"` + task + `"}`), Header: nats.Header{job.HeaderWorker: {"w-" + task}}}
			if r.reply != nil {
				out = r.reply(m)
			}
			_ = m.RespondMsg(out)
		}()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

func newGatherer(t testing.TB, nc *nats.Conn, tweak func(*gather.Config)) *gather.Gatherer {
	t.Helper()
	cfg := gather.Defaults()
	if tweak != nil {
		tweak(&cfg)
	}
	g, err := gather.New(nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	return g
}

func testJob(timeout time.Duration, tasks ...string) gather.Job {
	return gather.Job{ID: "job-1", Tasks: tasks, Data: []byte("img"), ContentType: "image/jpeg", Timeout: timeout}
}

func byTask(outs []gather.Outcome) map[string]gather.Outcome {
	m := map[string]gather.Outcome{}
	for _, o := range outs {
		m[o.Task] = o
	}
	return m
}

func TestRunAllOK(t *testing.T) {
	nc := newConn(t)
	for _, task := range []string{"vehicle", "plate", "face"} {
		serve(t, nc, task, &responder{work: 20 * time.Millisecond})
	}
	g := newGatherer(t, nc, nil)
	outs := g.Run(context.Background(), testJob(5*time.Second, "vehicle", "plate", "face"))
	if len(outs) != 3 {
		t.Fatalf("got %d outcomes, want 3", len(outs))
	}
	for i, want := range []string{"vehicle", "plate", "face"} {
		o := outs[i]
		if o.Task != want || o.Status != gather.StatusOK {
			t.Errorf("outcome %d: got %s %s (%v), want %s ok", i, o.Task, o.Status, o.Error, want)
		}
		var res struct{ Task string }
		if err := json.Unmarshal(o.Result, &res); err != nil || res.Task != want {
			t.Errorf("%s result: got %s (%v)", want, o.Result, err)
		}
		if o.Worker != "w-"+want || o.Attempts != 1 {
			t.Errorf("%s: got worker %q attempts %d, want w-%s and 1", want, o.Worker, o.Attempts, want)
		}
	}
	if n := g.Pending(); n != 0 {
		t.Errorf("pending after run: got %d, want 0", n)
	}
}

func TestRunHeadersReachWorker(t *testing.T) {
	nc := newConn(t)
	got := make(chan nats.Header, 1)
	serve(t, nc, "face", &responder{reply: func(m *nats.Msg) *nats.Msg {
		got <- m.Header
		return &nats.Msg{Data: []byte(`{}`)}
	}})
	g := newGatherer(t, nc, nil)
	j := testJob(5*time.Second, "face")
	j.Header = nats.Header{}
	j.Header.Set(job.HeaderTraceParent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	before := time.Now()
	g.Run(context.Background(), j)
	h := <-got
	for k, want := range map[string]string{
		job.HeaderID:          "job-1",
		job.HeaderContentType: "image/jpeg",
		job.HeaderAttempt:     "1",
		job.HeaderHeartbeat:   "250ms",
		job.HeaderTraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
	} {
		if v := h.Get(k); v != want {
			t.Errorf("header %s: got %q, want %q", k, v, want)
		}
	}
	dl, err := job.ParseDeadline(h.Get(job.HeaderDeadline))
	if err != nil || dl.Before(before.Add(4*time.Second)) || dl.After(time.Now().Add(5*time.Second)) {
		t.Errorf("deadline: got %v (%v), want about 5s from the start", dl, err)
	}
}

func TestRunPartialAtDeadline(t *testing.T) {
	nc := newConn(t)
	serve(t, nc, "plate", &responder{work: 10 * time.Millisecond})
	serve(t, nc, "face", &responder{work: 3 * time.Second})
	g := newGatherer(t, nc, nil)
	start := time.Now()
	outs := byTask(g.Run(context.Background(), testJob(300*time.Millisecond, "plate", "face")))
	took := time.Since(start)
	if took < 290*time.Millisecond || took > 1500*time.Millisecond {
		t.Errorf("took %v, want about the 300ms deadline", took)
	}
	if s := outs["plate"].Status; s != gather.StatusOK {
		t.Errorf("plate: got %s, want ok", s)
	}
	if s := outs["face"].Status; s != gather.StatusTimeout {
		t.Errorf("face: got %s, want timeout", s)
	}
}

func TestRunUnavailableAtOnce(t *testing.T) {
	nc := newConn(t)
	serve(t, nc, "plate", &responder{})
	g := newGatherer(t, nc, nil)
	start := time.Now()
	outs := byTask(g.Run(context.Background(), testJob(5*time.Second, "plate", "vehicle")))
	if took := time.Since(start); took > time.Second {
		t.Errorf("took %v, want well under the 5s deadline", took)
	}
	if o := outs["vehicle"]; o.Status != gather.StatusUnavailable || o.Error == nil {
		t.Errorf("vehicle: got %s %v, want unavailable with an error", o.Status, o.Error)
	}
	if s := outs["plate"].Status; s != gather.StatusOK {
		t.Errorf("plate: got %s, want ok", s)
	}
}

func TestRunSerialVersusConcurrent(t *testing.T) {
	nc := newConn(t)
	tasks := []string{"vehicle", "plate", "face"}
	for _, task := range tasks {
		serve(t, nc, task, &responder{work: 200 * time.Millisecond})
	}
	g := newGatherer(t, nc, nil)

	start := time.Now()
	outs := g.Run(context.Background(), testJob(5*time.Second, tasks...))
	concurrent := time.Since(start)

	j := testJob(5*time.Second, tasks...)
	j.Serial = true
	start = time.Now()
	serial := g.Run(context.Background(), j)
	serialTook := time.Since(start)

	if concurrent < 200*time.Millisecond || concurrent > 450*time.Millisecond {
		t.Errorf("concurrent took %v, want about the slowest task (200ms)", concurrent)
	}
	if serialTook < 600*time.Millisecond || serialTook > 1200*time.Millisecond {
		t.Errorf("serial took %v, want about the sum (600ms)", serialTook)
	}
	for i := range tasks {
		if outs[i].Status != gather.StatusOK || serial[i].Status != gather.StatusOK {
			t.Errorf("%s: got %s and %s, want ok twice", tasks[i], outs[i].Status, serial[i].Status)
		}
	}
	// Serial tasks start one after another.
	for i := 1; i < len(serial); i++ {
		if serial[i].Started < serial[i-1].Started+serial[i-1].Elapsed {
			t.Errorf("serial %s started at %v, before %s ended", tasks[i], serial[i].Started, tasks[i-1])
		}
	}
}

func TestRunWorkerErrors(t *testing.T) {
	nc := newConn(t)
	errReply := func(code, msg string) func(*nats.Msg) *nats.Msg {
		return func(*nats.Msg) *nats.Msg {
			return &nats.Msg{Header: nats.Header{micro.ErrorCodeHeader: {code}, micro.ErrorHeader: {msg}}}
		}
	}
	serve(t, nc, "vehicle", &responder{reply: errReply(job.CodeBadImage, "cannot decode")})
	serve(t, nc, "plate", &responder{reply: errReply(job.CodeDeadline, "too slow")})
	serve(t, nc, "face", &responder{reply: func(*nats.Msg) *nats.Msg { return &nats.Msg{Data: []byte("{not json")} }})
	g := newGatherer(t, nc, nil)
	outs := byTask(g.Run(context.Background(), testJob(5*time.Second, "vehicle", "plate", "face")))
	for task, want := range map[string]struct {
		status gather.Status
		code   string
	}{
		"vehicle": {gather.StatusError, job.CodeBadImage},
		"plate":   {gather.StatusTimeout, job.CodeDeadline},
		"face":    {gather.StatusError, job.CodeFailed},
	} {
		o := outs[task]
		if o.Status != want.status || o.Error == nil || o.Error.Code != want.code {
			t.Errorf("%s: got %s %+v, want %s code %s", task, o.Status, o.Error, want.status, want.code)
		}
	}
}

// A dispatch that goes silent (its replica died) is sent again after the
// lease, and the second replica's answer wins.
func TestRunRedispatchesLostJob(t *testing.T) {
	nc := newConn(t)
	r := &responder{
		work:    50 * time.Millisecond,
		swallow: func(m *nats.Msg) bool { return m.Header.Get(job.HeaderAttempt) == "1" },
	}
	serve(t, nc, "vehicle", r)
	g := newGatherer(t, nc, func(c *gather.Config) {
		c.Heartbeat, c.Lease = 50*time.Millisecond, 200*time.Millisecond
	})
	start := time.Now()
	o := g.Run(context.Background(), testJob(5*time.Second, "vehicle"))[0]
	if o.Status != gather.StatusOK || o.Attempts != 2 {
		t.Fatalf("got %s after %d attempts (%v), want ok after 2", o.Status, o.Attempts, o.Error)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %v, want about lease + work, far under the 5s deadline", took)
	}
}

// Heartbeats keep a long job's lease alive: no second dispatch.
func TestRunHeartbeatsKeepLease(t *testing.T) {
	nc := newConn(t)
	// The job outlasts the lease by far; heartbeats at a twelfth of it
	// leave room for a loaded machine.
	r := &responder{work: 1500 * time.Millisecond}
	serve(t, nc, "vehicle", r)
	g := newGatherer(t, nc, func(c *gather.Config) {
		c.Heartbeat, c.Lease = 50*time.Millisecond, 600*time.Millisecond
	})
	o := g.Run(context.Background(), testJob(5*time.Second, "vehicle"))[0]
	if o.Status != gather.StatusOK || o.Attempts != 1 || r.received.Load() != 1 {
		t.Errorf("got %s, %d attempts, %d received; want ok, 1, 1", o.Status, o.Attempts, r.received.Load())
	}
}

// A busy replica's refusal is retried; the retry's answer wins.
func TestRunRetriesBusy(t *testing.T) {
	nc := newConn(t)
	serve(t, nc, "face", &responder{reply: func(m *nats.Msg) *nats.Msg {
		if m.Header.Get(job.HeaderAttempt) == "1" {
			return &nats.Msg{Header: nats.Header{micro.ErrorCodeHeader: {job.CodeBusy}, micro.ErrorHeader: {"full"}}}
		}
		return &nats.Msg{Data: []byte(`{"ok":true}`)}
	}})
	g := newGatherer(t, nc, nil)
	o := g.Run(context.Background(), testJob(5*time.Second, "face"))[0]
	if o.Status != gather.StatusOK || o.Attempts != 2 {
		t.Errorf("got %s after %d attempts (%v), want ok after 2", o.Status, o.Attempts, o.Error)
	}
}

// A duplicate reply (both dispatches answered) is dropped, not delivered.
func TestRunDropsDuplicateAndLateReplies(t *testing.T) {
	nc := newConn(t)
	serve(t, nc, "plate", &responder{reply: func(m *nats.Msg) *nats.Msg {
		_ = m.Respond([]byte(`{"n":1}`))
		return &nats.Msg{Data: []byte(`{"n":2}`)}
	}})
	serve(t, nc, "face", &responder{work: 300 * time.Millisecond})
	g := newGatherer(t, nc, nil)
	outs := byTask(g.Run(context.Background(), testJob(100*time.Millisecond, "plate", "face")))
	if string(outs["plate"].Result) != `{"n":1}` {
		t.Errorf("plate: got %s, want the first reply", outs["plate"].Result)
	}
	// The late face reply and the duplicate plate reply are both dropped.
	waitFor(t, 2*time.Second, func() bool { return g.Dropped() >= 2 })
	if n := g.Pending(); n != 0 {
		t.Errorf("pending: got %d, want 0", n)
	}
}

func TestRunCancelled(t *testing.T) {
	nc := newConn(t)
	r := &responder{swallow: func(*nats.Msg) bool { return true }}
	serve(t, nc, "face", r)
	g := newGatherer(t, nc, nil)
	before := goleak.IgnoreCurrent()

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	o := g.Run(ctx, testJob(5*time.Second, "face"))[0]
	if took := time.Since(start); took > time.Second {
		t.Errorf("took %v, want about 100ms", took)
	}
	if o.Status != gather.StatusTimeout {
		t.Errorf("got %s, want timeout", o.Status)
	}
	if n := g.Pending(); n != 0 {
		t.Errorf("pending: got %d, want 0", n)
	}
	goleak.VerifyNone(t, before)
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tweak func(*gather.Config)
	}{
		{"bad prefix", func(c *gather.Config) { c.Prefix = "a.*" }},
		{"empty inbox", func(c *gather.Config) { c.InboxPrefix = "" }},
		{"lease under two heartbeats", func(c *gather.Config) { c.Lease = c.Heartbeat }},
		{"no attempts", func(c *gather.Config) { c.MaxAttempts = 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := gather.Defaults()
			tc.tweak(&c)
			if err := c.Validate(); err == nil {
				t.Errorf("got nil error for %+v", c)
			}
		})
	}
	if err := gather.Defaults().Validate(); err != nil {
		t.Errorf("defaults: got %v, want nil", err)
	}
}

func waitFor(t testing.TB, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
