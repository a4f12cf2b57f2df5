package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/visionmesh/vision/pkg/api"
	"github.com/visionmesh/vision/pkg/embednats"
	"github.com/visionmesh/vision/pkg/gather"
	"github.com/visionmesh/vision/pkg/jobs"
	"github.com/visionmesh/vision/pkg/testimage"
)

// jobDoc is the JSON of GET /v1/jobs/{id}, as documented.
type jobDoc struct {
	analysis
	Status     string `json:"status"`
	HTTPStatus int    `json:"http_status"`
	Attempt    int    `json:"attempt"`
	Callback   *struct {
		Delivered bool `json:"delivered"`
		Attempts  int  `json:"attempts"`
	} `json:"callback"`
}

// startJetStream runs an embedded NATS server with JetStream on a file
// store in dir.
func startJetStream(tb testing.TB, dir string) *server.Server {
	tb.Helper()
	return startNATSWith(tb, embednats.Options{Port: -1, Tweak: func(o *server.Options) {
		o.JetStream = true
		o.StoreDir = dir
	}})
}

// jobSystem is NATS with JetStream, one simulated worker per task and an
// orchestrator with -jobs.
type jobSystem struct {
	nats *server.Server
	orch *orch
	args []string // the orchestrator's flags, to start another replica
}

func startJobSystem(tb testing.TB, work string, orchArgs ...string) *jobSystem {
	tb.Helper()
	ns := startJetStream(tb, tb.TempDir())
	for _, task := range []string{"vehicle", "plate", "face"} {
		startWorker(tb, ns.ClientURL(), task, "-work", work)
	}
	args := append([]string{"-jobs", "-jobs-ack-wait", "2s"}, orchArgs...)
	return &jobSystem{nats: ns, orch: startOrchestrator(tb, ns.ClientURL(), args...), args: args}
}

// submit POSTs up to base/v1/jobs?query with extra headers.
func submit(tb testing.TB, c *http.Client, base, query string, up upload, hdr ...string) answer {
	tb.Helper()
	u := base + "/v1/jobs"
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(up.body))
	if err != nil {
		tb.Fatal(err)
	}
	if up.contentType != "" {
		req.Header.Set("Content-Type", up.contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		tb.Fatalf("POST %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return answer{Status: resp.StatusCode, Header: resp.Header, Body: body, Elapsed: time.Since(start)}
}

// accepted checks a 202 answer and returns the job id.
func accepted(tb testing.TB, a answer) string {
	tb.Helper()
	if a.Status != http.StatusAccepted {
		tb.Fatalf("got %d %s, want %d", a.Status, a.Body, http.StatusAccepted)
	}
	var b struct {
		JobID  string `json:"job_id"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal(a.Body, &b); err != nil || b.JobID == "" {
		tb.Fatalf("202 body %q: no job_id (%v)", a.Body, err)
	}
	if got, want := a.Header.Get("Location"), "/v1/jobs/"+b.JobID; got != want {
		tb.Errorf("Location %q, want %q", got, want)
	}
	return b.JobID
}

// getJob GETs a job document; it returns the status code and the document.
func getJob(c *http.Client, base, id string) (int, jobDoc, error) {
	var d jobDoc
	resp, err := c.Get(base + "/v1/jobs/" + id)
	if err != nil {
		return 0, d, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, d, err
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &d); err != nil {
			return resp.StatusCode, d, fmt.Errorf("decode %q: %w", body, err)
		}
	}
	return resp.StatusCode, d, nil
}

// waitDone polls GET /v1/jobs/{id} until the job is done and returns it.
func waitDone(tb testing.TB, c *http.Client, base, id string, timeout time.Duration) jobDoc {
	tb.Helper()
	var d jobDoc
	waitFor(tb, timeout, func() error {
		code, got, err := getJob(c, base, id)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("GET job: got %d, want 200", code)
		}
		if got.Status != "done" {
			return fmt.Errorf("job is %s", got.Status)
		}
		d = got
		return nil
	})
	return d
}

func checkAllOK(tb testing.TB, d jobDoc) {
	tb.Helper()
	if len(d.Tasks) != 3 {
		tb.Fatalf("%d tasks, want 3: %+v", len(d.Tasks), d.Tasks)
	}
	for name, tr := range d.Tasks {
		if tr.Status != "ok" || len(tr.Result) == 0 || tr.Worker == "" {
			tb.Errorf("task %s: status %s worker %q result %s, want ok with a result", name, tr.Status, tr.Worker, tr.Result)
		}
	}
	if d.HTTPStatus != http.StatusOK {
		tb.Errorf("http_status %d, want 200", d.HTTPStatus)
	}
}

// TestE2EJobs drives the async API of the real binaries: 202 then poll to
// done, 404, the same refusals as /v1/analyze, events, idempotency and a
// signed callback.
func TestE2EJobs(t *testing.T) {
	const secret = "callback-test-secret"
	sys := startJobSystem(t, "100ms", "-callback-secret", secret, "-callback-hosts", "127.0.0.1")
	c := newClient(t, 8)
	img := testimage.JPEG(64, 48, 90, 1)

	t.Run("202 then poll to done", func(t *testing.T) {
		a := submit(t, c, sys.orch.url, "", form("file", img))
		id := accepted(t, a)
		start := time.Now()
		d := waitDone(t, c, sys.orch.url, id, 20*time.Second)
		checkAllOK(t, d)
		if d.JobID != id || d.Image.Bytes != len(img) || d.Image.Format != "jpeg" {
			t.Errorf("document %s %+v, want job %s with the image", d.JobID, d.Image, id)
		}
		t.Logf("FIGURES jobs: 202 in %v, done seen %v after the 202 (tasks of 100ms)", round(a.Elapsed), round(time.Since(start)))
	})

	t.Run("figures", func(t *testing.T) {
		const n = 20
		var accept, done []time.Duration
		for range n {
			a := submit(t, c, sys.orch.url, "", raw("image/jpeg", img))
			id := accepted(t, a)
			start := time.Now()
			waitDone(t, c, sys.orch.url, id, 20*time.Second)
			accept = append(accept, a.Elapsed)
			done = append(done, a.Elapsed+time.Since(start))
		}
		t.Logf("FIGURES jobs: %d jobs one after another: 202 p50 %v p99 %v; POST to done seen (10ms polls) p50 %v p99 %v (tasks of 100ms)",
			n, round(quantile(accept, 0.5)), round(quantile(accept, 0.99)), round(quantile(done, 0.5)), round(quantile(done, 0.99)))
	})

	t.Run("unknown id is 404", func(t *testing.T) {
		for _, id := range []string{"6c4a9f57-0a3f-4f0e-8b43-0d2c7a9a1e11", "not-a-job", "a.b"} {
			code, _, err := getJob(c, sys.orch.url, id)
			if err != nil {
				t.Fatal(err)
			}
			if code != http.StatusNotFound {
				t.Errorf("GET %s: got %d, want 404", id, code)
			}
		}
	})

	t.Run("bad input as /v1/analyze", func(t *testing.T) {
		cases := []struct {
			name, query string
			up          upload
		}{
			{"empty", "", raw("image/jpeg", nil)},
			{"not an image", "", raw("application/octet-stream", []byte("plain text"))},
			{"truncated", "", raw("image/jpeg", img[:len(img)/2])},
			{"no file field", "", form("", nil)},
			{"unknown task", "tasks=nope", raw("image/jpeg", img)},
			{"bad timeout", "timeout=soon", raw("image/jpeg", img)},
			{"text/plain", "", raw("text/plain", img)},
			{"bad callback_url", "callback_url=ftp://x", raw("image/jpeg", img)},
			{"callback host not allowed", "callback_url=http://169.254.169.254/latest", raw("image/jpeg", img)},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				j := submit(t, c, sys.orch.url, tc.query, tc.up)
				if j.Status < 400 || j.Status >= 500 {
					t.Fatalf("POST /v1/jobs: got %d %s, want a 4xx", j.Status, j.Body)
				}
				if strings.Contains(tc.name, "callback") {
					return // /v1/analyze has no callback
				}
				a := postImage(t, c, sys.orch.url, tc.query, tc.up)
				if j.Status != a.Status {
					t.Errorf("POST /v1/jobs: got %d, want %d as /v1/analyze", j.Status, a.Status)
				}
				var je, ae errorReply
				_ = json.Unmarshal(j.Body, &je)
				_ = json.Unmarshal(a.Body, &ae)
				if je.Code != ae.Code || je.Code == "" {
					t.Errorf("code %q, want %q", je.Code, ae.Code)
				}
			})
		}
	})

	t.Run("events", func(t *testing.T) {
		id := accepted(t, submit(t, c, sys.orch.url, "", raw("image/jpeg", img)))
		resp, err := c.Get(sys.orch.url + "/v1/jobs/" + id + "/events")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Fatalf("Content-Type %q, want text/event-stream", ct)
		}
		var events []string
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		tasks := map[string]bool{}
		for sc.Scan() {
			line := sc.Text()
			if ev, ok := strings.CutPrefix(line, "event: "); ok {
				events = append(events, ev)
			}
			if data, ok := strings.CutPrefix(line, "data: "); ok && events[len(events)-1] == "task" {
				var te api.TaskEvent
				if err := json.Unmarshal([]byte(data), &te); err != nil || te.Status != gather.StatusOK {
					t.Errorf("task event %s: %v", data, err)
				}
				tasks[te.Task] = true
			}
		}
		if len(events) != 4 || events[3] != "done" || len(tasks) != 3 {
			t.Errorf("events %v for tasks %v, want three task events then done", events, tasks)
		}
	})

	t.Run("idempotency key", func(t *testing.T) {
		first := accepted(t, submit(t, c, sys.orch.url, "", raw("image/jpeg", img), "Idempotency-Key", "cam-7/frame-42"))
		again := submit(t, c, sys.orch.url, "", raw("image/jpeg", img), "Idempotency-Key", "cam-7/frame-42")
		if got := accepted(t, again); got != first {
			t.Errorf("same key: job %s, want %s", got, first)
		}
		if again.Header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("Idempotent-Replayed %q, want true", again.Header.Get("Idempotent-Replayed"))
		}
		other := accepted(t, submit(t, c, sys.orch.url, "", raw("image/jpeg", img), "Idempotency-Key", "cam-7/frame-43"))
		if other == first {
			t.Errorf("another key got the same job %s", first)
		}
		// The same key with another image is a client bug, not a replay.
		clash := submit(t, c, sys.orch.url, "", raw("image/jpeg", testimage.JPEG(32, 24, 90, 9)), "Idempotency-Key", "cam-7/frame-42")
		if clash.Status != http.StatusUnprocessableEntity || !strings.Contains(string(clash.Body), "idempotency_conflict") {
			t.Errorf("same key, other image: got %d %s, want 422 idempotency_conflict", clash.Status, clash.Body)
		}
	})

	t.Run("signed callback with retries", func(t *testing.T) {
		var mu sync.Mutex
		var calls int
		got := make(chan []byte, 1)
		hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			mu.Lock()
			calls++
			n := calls
			mu.Unlock()
			if n == 1 {
				http.Error(w, "busy", http.StatusServiceUnavailable) // retried
				return
			}
			if want := jobs.Sign(secret, body); r.Header.Get("X-Signature") != want {
				http.Error(w, "bad signature", http.StatusUnauthorized)
				t.Errorf("X-Signature %q, want %q", r.Header.Get("X-Signature"), want)
				return
			}
			w.WriteHeader(http.StatusNoContent)
			got <- body
		}))
		defer hook.Close()
		cbID := accepted(t, submit(t, c, sys.orch.url, "callback_url="+hook.URL+"/hook", form("file", img)))
		select {
		case body := <-got:
			var d jobDoc
			if err := json.Unmarshal(body, &d); err != nil {
				t.Fatalf("callback body: %v", err)
			}
			if d.JobID != cbID || d.Status != "done" {
				t.Errorf("callback for %s %s, want %s done", d.JobID, d.Status, cbID)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("no callback within 20s")
		}
		waitFor(t, 10*time.Second, func() error {
			_, d, err := getJob(c, sys.orch.url, cbID)
			if err != nil {
				return err
			}
			if d.Callback == nil || !d.Callback.Delivered || d.Callback.Attempts != 2 {
				return fmt.Errorf("callback report %+v, want delivered after 2 attempts", d.Callback)
			}
			return nil
		})
	})
}

// TestE2EJobSurvivesOrchestratorKill accepts a job, kills the orchestrator
// with SIGKILL right after the 202 and starts another one on the same
// NATS: the job completes and GET answers it done.
func TestE2EJobSurvivesOrchestratorKill(t *testing.T) {
	sys := startJobSystem(t, "500ms")
	c := newClient(t, 4)
	img := testimage.JPEG(64, 48, 90, 2)

	a := submit(t, c, sys.orch.url, "", raw("image/jpeg", img))
	id := accepted(t, a)
	sys.orch.signal(t, syscall.SIGKILL)
	killed := time.Now()
	sys.orch.wait(t, 10*time.Second)

	second := startOrchestrator(t, sys.nats.ClientURL(), sys.args...)
	d := waitDone(t, c, second.url, id, 30*time.Second)
	checkAllOK(t, d)
	t.Logf("FIGURES jobs kill: 202 in %v; done %v after SIGKILL (new replica up, ack wait 2s, tasks of 500ms), delivery %d",
		round(a.Elapsed), round(time.Since(killed)), d.Attempt)
}

// TestNatsConfJobsPermissions runs the job store and processor as the
// orchestrator user of the real nats.conf: every JetStream call they make
// is allowed (no permission violation) and a job goes all the way through.
func TestNatsConfJobsPermissions(t *testing.T) {
	url, pw := newNatsConfServer(t)
	nc, errs := dialNatsConfOrchestrator(t, url, pw)
	cfg := jobs.Defaults()
	cfg.AckWait = 2 * time.Second
	cfg.Concurrency = 2
	st, err := jobs.New(nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	p := st.Process(fakeGatherer{}, log)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Shutdown(ctx)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	doc := api.JobDoc{Response: api.Response{JobID: "0b6c7c8e-2f0e-4a4b-9a59-2bd0c6a1e8a4", Mode: api.ModeConcurrent,
		Tasks: map[string]api.TaskReport{"vehicle": {Status: api.TaskPending}}}, Status: api.JobPending}
	req := api.JobRequest{Doc: doc, Data: []byte("jpeg"), Tasks: []string{"vehicle"}, Timeout: time.Second, IdempotencyKey: "k"}
	if _, created, err := st.Submit(ctx, req); err != nil || !created {
		t.Fatalf("submit: created %v, %v (errors %v)", created, err, errs.all())
	}
	if _, created, err := st.Submit(ctx, req); err != nil || created {
		t.Fatalf("submit again: created %v, %v, want the same job", created, err)
	}
	ch, err := st.Watch(ctx, doc.JobID)
	if err != nil {
		t.Fatalf("watch: %v (errors %v)", err, errs.all())
	}
	var last api.JobDoc
	for d := range ch {
		last = d
	}
	if last.Status != api.JobDone || last.Tasks["vehicle"].Status != gather.StatusOK {
		t.Fatalf("last document %+v, want done with vehicle ok (errors %v)", last, errs.all())
	}
	flushNatsConf(t, nc)
	if e := errs.all(); len(e) > 0 {
		t.Errorf("orchestrator errors: %v", e)
	}
	// The orchestrator still cannot take task jobs or delete the stream.
	for _, subj := range []string{"$JS.API.STREAM.DELETE.VISION_JOBS", "$JS.API.STREAM.PURGE.VISION_JOBS", "$JS.API.STREAM.CREATE.OTHER"} {
		if _, err := nc.Request(subj, nil, time.Second); err == nil {
			t.Errorf("%s answered, want refused", subj)
		}
		eventually(t, 5*time.Second, func() error { return errs.violation("Publish", subj) })
	}
}

// fakeGatherer answers every task ok at once.
type fakeGatherer struct{}

func (fakeGatherer) Run(_ context.Context, j gather.Job) []gather.Outcome {
	out := make([]gather.Outcome, len(j.Tasks))
	for i, task := range j.Tasks {
		out[i] = gather.Outcome{Task: task, Status: gather.StatusOK, Attempts: 1, Worker: "fake", Result: json.RawMessage(`{}`)}
		if j.OnOutcome != nil {
			j.OnOutcome(out[i])
		}
	}
	return out
}
