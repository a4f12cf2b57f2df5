package worker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/visionmesh/vision/pkg/analyzer"
	"github.com/visionmesh/vision/pkg/embednats"
	"github.com/visionmesh/vision/pkg/job"
	"github.com/visionmesh/vision/pkg/testimage"
	"github.com/visionmesh/vision/pkg/worker"
)

func startServer(t testing.TB) string {
	t.Helper()
	s, err := embednats.Start(embednats.Options{Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s.ClientURL()
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

// gate is an analyzer whose jobs block until released.
type gate struct {
	started atomic.Int64
	release chan struct{}
}

func (g *gate) Analyze(ctx context.Context, in analyzer.Input) (any, error) {
	g.started.Add(1)
	select {
	case <-g.release:
		return map[string]string{"job": in.JobID}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func startWorker(t testing.TB, url string, a analyzer.Analyzer, tweak func(*worker.Config)) (*worker.Worker, *nats.Conn) {
	t.Helper()
	cfg := worker.Defaults("face")
	if tweak != nil {
		tweak(&cfg)
	}
	nc := connect(t, url)
	w, err := worker.New(nc, a, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Shutdown(context.Background()) })
	return w, nc
}

// send publishes a job and returns the channel its replies arrive on.
func send(t testing.TB, nc *nats.Conn, id string, hdr map[string]string) chan *nats.Msg {
	return sendData(t, nc, id, hdr, tinyJPEG)
}

var tinyJPEG = testimage.JPEG(8, 8, 80, 1)

func sendData(t testing.TB, nc *nats.Conn, id string, hdr map[string]string, data []byte) chan *nats.Msg {
	t.Helper()
	ch := make(chan *nats.Msg, 64)
	inbox := nats.NewInbox()
	sub, err := nc.ChanSubscribe(inbox, ch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	h := nats.Header{}
	h.Set(job.HeaderID, id)
	h.Set(job.HeaderDeadline, job.FormatDeadline(time.Now().Add(5*time.Second)))
	for k, v := range hdr {
		if v == "" {
			h.Del(k)
		} else {
			h.Set(k, v)
		}
	}
	m := &nats.Msg{Subject: job.Subject(job.DefaultPrefix, "face"), Reply: inbox, Data: data, Header: h}
	if err := nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	return ch
}

// final waits for the first non-heartbeat reply and counts heartbeats.
func final(t testing.TB, ch chan *nats.Msg) (*nats.Msg, int) {
	t.Helper()
	beats := 0
	timeout := time.After(5 * time.Second)
	for {
		select {
		case m := <-ch:
			if m.Header.Get(job.HeaderStatus) == job.StatusWorking {
				beats++
				continue
			}
			return m, beats
		case <-timeout:
			t.Fatal("no reply within 5s")
		}
	}
}

func errCode(m *nats.Msg) string { return m.Header.Get(micro.ErrorCodeHeader) }

func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWorkerReplies(t *testing.T) {
	url := startServer(t)
	a := analyzer.Func(func(ctx context.Context, in analyzer.Input) (any, error) {
		switch in.JobID {
		case "bad-image":
			return nil, analyzer.BadImagef("cannot decode")
		case "unavailable":
			return nil, fmt.Errorf("model: %w", analyzer.ErrUnavailable)
		case "fail":
			return nil, errors.New("boom")
		case "panic":
			panic("analyzer bug")
		}
		if in.ContentType != "image/jpeg" {
			return nil, fmt.Errorf("content type %q, want the sniffed image/jpeg", in.ContentType)
		}
		return map[string]string{"task": in.Task, "type": in.ContentType}, nil
	})
	w, nc := startWorker(t, url, a, func(c *worker.Config) { c.MaxPixels = 1_000_000 })
	for _, tc := range []struct {
		id, code string
		hdr      map[string]string
		data     []byte
	}{
		{id: "ok", hdr: map[string]string{job.HeaderContentType: "image/png"}},
		{id: "bad-image", code: job.CodeBadImage},
		{id: "unavailable", code: job.CodeUnavailable},
		{id: "fail", code: job.CodeFailed},
		{id: "panic", code: job.CodeFailed},
		{id: "no-deadline", code: job.CodeBadJob, hdr: map[string]string{job.HeaderDeadline: ""}},
		{id: "expired", code: job.CodeDeadline, hdr: map[string]string{job.HeaderDeadline: job.FormatDeadline(time.Now().Add(-time.Second))}},
		{id: "bad-heartbeat", code: job.CodeBadJob, hdr: map[string]string{job.HeaderHeartbeat: "often"}},
		{id: "not-an-image", code: job.CodeBadImage, data: []byte("hello")},
		{id: "bomb", code: job.CodeBadImage, data: testimage.GIF(1100, 1000)},
		{id: "ok-after-panic"},
	} {
		t.Run(tc.id, func(t *testing.T) {
			data := tc.data
			if data == nil {
				data = tinyJPEG
			}
			m, _ := final(t, sendData(t, nc, tc.id, tc.hdr, data))
			if got := errCode(m); got != tc.code {
				t.Fatalf("error code: got %q (%s), want %q", got, m.Header.Get(micro.ErrorHeader), tc.code)
			}
			if got := m.Header.Get(job.HeaderWorker); got != w.ID() {
				t.Errorf("worker id: got %q, want %q", got, w.ID())
			}
			if tc.code == "" && len(m.Data) == 0 {
				t.Errorf("ok reply has no body")
			}
		})
	}
	s := w.Stats()
	if s.Done != 2 || s.Failed != 6 {
		t.Errorf("stats: got done %d failed %d, want 2 and 6", s.Done, s.Failed)
	}
}

func TestWorkerConcurrencyAndBusy(t *testing.T) {
	url := startServer(t)
	g := &gate{release: make(chan struct{})}
	w, nc := startWorker(t, url, g, func(c *worker.Config) { c.Concurrency, c.MaxQueue = 2, 1 })
	var chans []chan *nats.Msg
	for i := range 3 {
		chans = append(chans, send(t, nc, fmt.Sprint("job-", i), nil))
	}
	waitFor(t, 10*time.Second, "two running, one queued", func() bool {
		s := w.Stats()
		return s.InFlight == 2 && s.Queued == 1
	})
	if n := g.started.Load(); n != 2 {
		t.Errorf("started: got %d, want 2 (the concurrency)", n)
	}
	// The replica is full: a fourth job is refused as busy at once.
	m, _ := final(t, send(t, nc, "job-3", nil))
	if errCode(m) != job.CodeBusy {
		t.Errorf("fourth job: got code %q, want %q", errCode(m), job.CodeBusy)
	}
	close(g.release)
	for i, ch := range chans {
		if m, _ := final(t, ch); errCode(m) != "" {
			t.Errorf("job %d: got error %q", i, m.Header.Get(micro.ErrorHeader))
		}
	}
}

func TestWorkerHeartbeats(t *testing.T) {
	url := startServer(t)
	g := &gate{release: make(chan struct{})}
	_, nc := startWorker(t, url, g, nil)
	ch := send(t, nc, "long", map[string]string{job.HeaderHeartbeat: "20ms"})
	waitFor(t, 10*time.Second, "3 heartbeats", func() bool { return len(ch) >= 3 })
	close(g.release)
	m, beats := final(t, ch)
	if errCode(m) != "" || beats < 3 {
		t.Errorf("got code %q after %d heartbeats, want ok after at least 3", errCode(m), beats)
	}
	// No heartbeat follows the result.
	select {
	case m := <-ch:
		if m.Header.Get(job.HeaderStatus) == job.StatusWorking {
			// A flush round trip has passed by now; anything here is late.
			if err := nc.Flush(); err == nil {
				t.Errorf("heartbeat after the result")
			}
		}
	default:
	}
}

// Shutdown lets running jobs finish and reply, and hands queued ones back.
func TestWorkerShutdownDrains(t *testing.T) {
	url := startServer(t)
	g := &gate{release: make(chan struct{})}
	w, nc := startWorker(t, url, g, func(c *worker.Config) { c.Concurrency = 2 })
	client := connect(t, url)
	var chans []chan *nats.Msg
	for i := range 3 {
		chans = append(chans, send(t, client, fmt.Sprint("job-", i), nil))
	}
	waitFor(t, 10*time.Second, "two running", func() bool { return w.Stats().InFlight == 2 })

	done := make(chan error, 1)
	go func() { done <- worker.Drain(context.Background(), w, nc) }()
	// The queued job comes back as busy, for another replica, while the
	// running ones still hold their slots.
	answers := make([]*nats.Msg, len(chans))
	waitFor(t, 10*time.Second, "the queued job handed back", func() bool {
		handedBack := false
		for i, ch := range chans {
			select {
			case m := <-ch:
				answers[i] = m
			default:
			}
			handedBack = handedBack || (answers[i] != nil && errCode(answers[i]) == job.CodeBusy)
		}
		return handedBack
	})
	if n := w.Stats().InFlight; n != 2 {
		t.Errorf("in flight while draining: got %d, want 2", n)
	}
	close(g.release)
	if err := <-done; err != nil {
		t.Fatalf("drain: %v", err)
	}
	ok, busy := 0, 0
	for i, ch := range chans {
		if answers[i] == nil {
			answers[i], _ = final(t, ch)
		}
		switch errCode(answers[i]) {
		case "":
			ok++
		case job.CodeBusy:
			busy++
		}
	}
	if ok != 2 || busy != 1 {
		t.Errorf("after drain: got %d ok and %d busy, want 2 and 1", ok, busy)
	}
	if !nc.IsClosed() {
		t.Errorf("connection not closed after drain")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tweak func(*worker.Config)
	}{
		{"bad task", func(c *worker.Config) { c.Task = "a.b" }},
		{"zero concurrency", func(c *worker.Config) { c.Concurrency = 0 }},
		{"negative queue", func(c *worker.Config) { c.MaxQueue = -1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := worker.Defaults("face")
			tc.tweak(&c)
			if err := c.Validate(); err == nil {
				t.Errorf("got nil error")
			}
		})
	}
}
