package test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/visionmesh/vision/pkg/embednats"
	"github.com/visionmesh/vision/pkg/worker"
)

// binDir holds the orchestrator and workers binaries, built on first use by
// buildBinaries and removed by TestMain.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vision-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var (
	buildOnce sync.Once
	buildErr  error
)

// buildBinaries builds ./orchestrator and ./workers once per test binary
// (normal builds: the race detector watches the test process, the binaries
// are what is under test) and returns their paths.
func buildBinaries(tb testing.TB) (orchestratorBin, workersBin string) {
	tb.Helper()
	buildOnce.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		cmd := exec.Command(goBin, "build", "-o", binDir+string(filepath.Separator), "./orchestrator", "./workers")
		cmd.Dir = ".." // the module root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		// A binary that cannot even parse its flags fails every test the
		// same way: say so once, clearly.
		for _, name := range []string{"orchestrator", "workers"} {
			if out, err := exec.Command(filepath.Join(binDir, name), "-h").CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("%s -h: %v\n%s", name, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return filepath.Join(binDir, "orchestrator"), filepath.Join(binDir, "workers")
}

// waitFor calls fn every 10ms until it returns nil and fails tb with fn's
// last error if that has not happened within timeout.
func waitFor(tb testing.TB, timeout time.Duration, fn func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("still failing after %v: %v", timeout, err)
		}
		time.Sleep(10 * time.Millisecond) // poll interval, not synchronisation
	}
}

// --- NATS ---

// startNATS runs an embedded nats-server on a free 127.0.0.1 port and shuts
// it down when the test ends.
func startNATS(tb testing.TB) *server.Server {
	tb.Helper()
	return startNATSWith(tb, embednats.Options{Port: -1})
}

// startNATSWith runs an embedded nats-server with o and shuts it down when
// the test ends (shutting it down earlier is fine).
func startNATSWith(tb testing.TB, o embednats.Options) *server.Server {
	tb.Helper()
	s, err := embednats.Start(o)
	if err != nil {
		tb.Fatalf("start nats: %v", err)
	}
	tb.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// connectNATS connects the test itself to url (to watch workers through
// the micro discovery subjects) and closes the connection at the end.
func connectNATS(tb testing.TB, url string) *nats.Conn {
	tb.Helper()
	nc, err := nats.Connect(url, nats.Name("e2e-test"), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		tb.Fatalf("connect %s: %v", url, err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

// workerStats asks one worker replica for its counters through the micro
// STATS subject $SRV.STATS.<task>.<id>. It fails when the replica does not
// answer or has no endpoint yet.
func workerStats(nc *nats.Conn, task, id string) (worker.Stats, error) {
	var ws worker.Stats
	m, err := nc.Request("$SRV.STATS."+task+"."+id, nil, 2*time.Second)
	if err != nil {
		return ws, fmt.Errorf("stats of %s/%s: %w", task, id, err)
	}
	var st micro.Stats
	if err := json.Unmarshal(m.Data, &st); err != nil {
		return ws, fmt.Errorf("stats of %s/%s: %w", task, id, err)
	}
	if len(st.Endpoints) == 0 {
		return ws, fmt.Errorf("stats of %s/%s: no endpoint yet", task, id)
	}
	if err := json.Unmarshal(st.Endpoints[0].Data, &ws); err != nil {
		return ws, fmt.Errorf("stats of %s/%s: data: %w", task, id, err)
	}
	return ws, nil
}

// --- processes ---

// proc is a binary running as a child process, with its log lines kept.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // cmd.Wait's result, set before done is closed

	mu    sync.Mutex
	lines []string
}

// startProc starts bin with args, collects its stdout and stderr lines,
// and at the end of the test kills it if it still runs (and prints its log
// if the test failed).
func startProc(tb testing.TB, name, bin string, args ...string) *proc {
	tb.Helper()
	p := &proc{name: name, done: make(chan struct{})}
	pr, pw, err := os.Pipe()
	if err != nil {
		tb.Fatalf("pipe: %v", err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = pw, pw
	// A clean environment: no NATS_URL, TASK, ADDR, ... from the caller.
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	if err := p.cmd.Start(); err != nil {
		pw.Close()
		pr.Close()
		tb.Fatalf("start %s: %v", name, err)
	}
	pw.Close()
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
		}
		pr.Close()
	}()
	go func() {
		err := p.cmd.Wait()
		<-read
		p.err = err
		close(p.done)
	}()
	tb.Cleanup(func() {
		if !p.exited() {
			_ = p.cmd.Process.Kill()
		}
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			tb.Errorf("%s (pid %d) did not exit after SIGKILL", name, p.cmd.Process.Pid)
		}
		if tb.Failed() {
			tb.Logf("log of %s:\n%s", name, p.tail(60))
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process.
func (p *proc) signal(tb testing.TB, sig os.Signal) {
	tb.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		tb.Fatalf("signal %v to %s: %v", sig, p.name, err)
	}
}

// wait waits up to timeout for the process to exit and returns its exit
// code.
func (p *proc) wait(tb testing.TB, timeout time.Duration) int {
	tb.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		tb.Fatalf("%s (pid %d) still running after %v", p.name, p.cmd.Process.Pid, timeout)
	}
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	default:
		tb.Fatalf("wait for %s: %v", p.name, p.err)
		return -1
	}
}

// tail returns the last n log lines.
func (p *proc) tail(n int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines[max(0, len(p.lines)-n):], "\n")
}

// waitLine waits until a log line matches re and returns its submatches.
func (p *proc) waitLine(tb testing.TB, re *regexp.Regexp, timeout time.Duration) []string {
	tb.Helper()
	var found []string
	waitFor(tb, timeout, func() error {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, l := range p.lines {
			if m := re.FindStringSubmatch(l); m != nil {
				found = m
				return nil
			}
		}
		if p.exited() {
			return fmt.Errorf("%s exited (%v) without logging %s; last lines:\n%s", p.name, p.err, re, strings.Join(p.lines[max(0, len(p.lines)-10):], "\n"))
		}
		return fmt.Errorf("%s has not logged %s yet", p.name, re)
	})
	return found
}

// peakRSS returns the process's peak resident set size (VmHWM) in bytes.
func (p *proc) peakRSS(tb testing.TB) int64 {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		tb.Fatalf("read status of %s: %v", p.name, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err != nil {
				tb.Fatalf("parse VmHWM %q: %v", l, err)
			}
			return kb << 10
		}
	}
	tb.Fatalf("no VmHWM in /proc/%d/status", p.cmd.Process.Pid)
	return 0
}

var (
	listeningRE     = regexp.MustCompile(`msg="orchestrator listening" addr=(\S+)`)
	workerStartedRE = regexp.MustCompile(`msg="worker started" .*\bid=(\S+)`)
)

// orch is a running orchestrator process.
type orch struct {
	*proc
	url string // http://127.0.0.1:PORT
}

// startOrchestrator runs the orchestrator binary against natsURL on a free
// port, with args appended (later flags win), and waits until /readyz
// answers 200.
func startOrchestrator(tb testing.TB, natsURL string, args ...string) *orch {
	tb.Helper()
	bin, _ := buildBinaries(tb)
	all := append([]string{"-addr", "127.0.0.1:0", "-nats", natsURL}, args...)
	p := startProc(tb, "orchestrator", bin, all...)
	addr := p.waitLine(tb, listeningRE, 30*time.Second)[1]
	o := &orch{proc: p, url: "http://" + addr}
	waitReady(tb, o.url, 20*time.Second)
	return o
}

// waitReady waits until GET base/readyz answers 200.
func waitReady(tb testing.TB, base string, timeout time.Duration) {
	tb.Helper()
	waitFor(tb, timeout, func() error {
		code, err := getStatus(base + "/readyz")
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("readyz: got %d, want %d", code, http.StatusOK)
		}
		return nil
	})
}

// getStatus GETs url and returns the status code.
func getStatus(url string) (int, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// wproc is a running worker process.
type wproc struct {
	*proc
	task string
	id   string // micro instance id, the "worker" of a task report
}

// startWorker runs one worker replica of task against natsURL with args
// appended, and waits until the replica's endpoint is registered (it
// answers micro STATS with its endpoint, so the server holds its queue
// subscription).
func startWorker(tb testing.TB, natsURL, task string, args ...string) *wproc {
	tb.Helper()
	_, bin := buildBinaries(tb)
	all := append([]string{"-task", task, "-analyzer", "simulate", "-nats", natsURL}, args...)
	p := startProc(tb, "worker "+task, bin, all...)
	id := p.waitLine(tb, workerStartedRE, 30*time.Second)[1]
	w := &wproc{proc: p, task: task, id: id}
	w.proc.name = fmt.Sprintf("worker %s %s", task, id)
	nc := connectNATS(tb, natsURL)
	waitFor(tb, 20*time.Second, func() error {
		_, err := workerStats(nc, task, id)
		return err
	})
	nc.Close()
	return w
}

// --- HTTP ---

// taskReport is one task's part of an answer, as documented.
type taskReport struct {
	Status    string          `json:"status"`
	StartedMS float64         `json:"started_ms"`
	ElapsedMS float64         `json:"elapsed_ms"`
	Worker    string          `json:"worker"`
	Attempts  int             `json:"attempts"`
	Result    json.RawMessage `json:"result"`
	Error     *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// analysis is the JSON answer of POST /v1/analyze, as documented.
type analysis struct {
	JobID     string  `json:"job_id"`
	Mode      string  `json:"mode"`
	ElapsedMS float64 `json:"elapsed_ms"`
	Image     struct {
		Bytes       int    `json:"bytes"`
		SHA256      string `json:"sha256"`
		ContentType string `json:"content_type"`
		Format      string `json:"format"`
		Width       int    `json:"width"`
		Height      int    `json:"height"`
	} `json:"image"`
	Tasks map[string]taskReport `json:"tasks"`
}

// errorReply is the JSON body of every refused request.
type errorReply struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// answer is what one POST /v1/analyze got.
type answer struct {
	Status  int
	Header  http.Header
	Body    []byte
	Elapsed time.Duration
}

// analysis decodes the body as an analysis, failing tb if it is not one.
func (a answer) analysis(tb testing.TB) analysis {
	tb.Helper()
	var an analysis
	if err := json.Unmarshal(a.Body, &an); err != nil {
		tb.Fatalf("status %d body %q: not an analysis: %v", a.Status, a.Body, err)
	}
	if an.JobID == "" || an.Tasks == nil {
		tb.Fatalf("status %d body %q: not an analysis (no job_id or tasks)", a.Status, a.Body)
	}
	return an
}

// failedTasks counts the tasks of a that are not ok (all of them when a is
// not an analysis).
func (a answer) failedTasks(want int) int {
	var an analysis
	if err := json.Unmarshal(a.Body, &an); err != nil || an.Tasks == nil {
		return want
	}
	n := want - len(an.Tasks)
	for _, tr := range an.Tasks {
		if tr.Status != "ok" {
			n++
		}
	}
	return n
}

// upload is a request body for /v1/analyze.
type upload struct {
	contentType string
	body        []byte
}

// raw is an upload of data as the body with content type ct.
func raw(ct string, data []byte) upload { return upload{contentType: ct, body: data} }

// form is a multipart/form-data upload with a text field "note" and then,
// unless field is empty, data as a file in field (the way curl -F sends it).
func form(field string, data []byte) upload {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	_ = mw.WriteField("note", "e2e")
	if field != "" {
		fw, _ := mw.CreateFormFile(field, "some.jpg")
		_, _ = fw.Write(data)
	}
	_ = mw.Close()
	return upload{contentType: mw.FormDataContentType(), body: b.Bytes()}
}

// newClient returns an HTTP client whose timeout guards against hangs; its
// idle connections are closed at the end of the test.
func newClient(tb testing.TB, conns int) *http.Client {
	tb.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: 0}
	tb.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}
}

// post sends up to base/v1/analyze?query and reads the whole answer. It
// does not fail the test, so load goroutines can use it.
func post(c *http.Client, base, query string, up upload) (answer, error) {
	u := base + "/v1/analyze"
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(up.body))
	if err != nil {
		return answer{}, err
	}
	if up.contentType != "" {
		req.Header.Set("Content-Type", up.contentType)
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return answer{Elapsed: time.Since(start)}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	a := answer{Status: resp.StatusCode, Header: resp.Header, Body: body, Elapsed: time.Since(start)}
	if err != nil {
		return a, fmt.Errorf("read body: %w", err)
	}
	return a, nil
}

// postImage is post that fails tb on a transport error.
func postImage(tb testing.TB, c *http.Client, base, query string, up upload) answer {
	tb.Helper()
	a, err := post(c, base, query, up)
	if err != nil {
		tb.Fatalf("POST /v1/analyze?%s: %v", query, err)
	}
	return a
}

// --- load and figures ---

// tally records the outcome of many requests from several goroutines.
type tally struct {
	mu        sync.Mutex
	sent      int
	failed    int // tasks not ok (a refused or broken request counts all its tasks)
	statuses  map[int]int
	errs      []error
	latencies []time.Duration
	workers   map[string]int
}

func newTally() *tally { return &tally{statuses: map[int]int{}, workers: map[string]int{}} }

// add records one request that expected nTasks tasks.
func (t *tally) add(a answer, err error, nTasks int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sent++
	t.latencies = append(t.latencies, a.Elapsed)
	if err != nil {
		t.errs = append(t.errs, err)
		t.failed += nTasks
		return
	}
	t.statuses[a.Status]++
	t.failed += a.failedTasks(nTasks)
	var an analysis
	if json.Unmarshal(a.Body, &an) == nil {
		for _, tr := range an.Tasks {
			if tr.Worker != "" {
				t.workers[tr.Worker]++
			}
		}
	}
}

// p returns the q-quantile (0..1) of the latencies, nearest rank.
func (t *tally) p(q float64) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return quantile(t.latencies, q)
}

// round rounds d for printing: to 10µs below 10ms, else to 1ms.
func round(d time.Duration) time.Duration {
	if d < 10*time.Millisecond {
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Millisecond)
}

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// figures logs the numbers that go into the README's reliability section.
func (t *tally) figures(tb testing.TB, scenario string) {
	tb.Helper()
	t.mu.Lock()
	sent, failed, statuses, nerr := t.sent, t.failed, fmt.Sprint(t.statuses), len(t.errs)
	t.mu.Unlock()
	tb.Logf("FIGURES %s: requests sent %d, tasks failed %d, latency p50 %v p99 %v max %v, statuses %s, transport errors %d",
		scenario, sent, failed, round(t.p(0.50)), round(t.p(0.99)), round(t.p(1)), statuses, nerr)
}

// load runs clients goroutines that post up in a loop until stop is
// called; stop waits for them and returns.
func load(c *http.Client, base, query string, up upload, clients, nTasks int, t *tally) (stop func()) {
	quit := make(chan struct{})
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-quit:
					return
				default:
				}
				a, err := post(c, base, query, up)
				t.add(a, err, nTasks)
			}
		}()
	}
	var once sync.Once
	return func() {
		once.Do(func() { close(quit) })
		wg.Wait()
	}
}

// workerCount returns how many task results the worker with id gave.
func (t *tally) workerCount(id string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.workers[id]
}

// sentSoFar returns how many requests the tally has seen.
func (t *tally) sentSoFar() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sent
}
