package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/visionmesh/vision/pkg/analyzer"
	"github.com/visionmesh/vision/pkg/api"
	"github.com/visionmesh/vision/pkg/gather"
	"github.com/visionmesh/vision/pkg/imageinfo"
	"github.com/visionmesh/vision/pkg/job"
	"github.com/visionmesh/vision/pkg/worker"
)

// The broker-less baseline is the original design done well: the same HTTP
// front as the orchestrator (pkg/api: body limits, image check, sha256, the
// same JSON answer), but instead of NATS an HTTP fan-out that posts the
// image to one HTTP service per task, all at once, over keep-alive
// connections, and waits for every answer. The task services run the same
// analyzer as the workers and answer the same JSON. So the two systems
// differ only in how a job reaches the tasks and comes back.

// HTTPGatherer is the baseline's fan-out: an api.Gatherer that posts a job's
// image to one HTTP task service per task.
type HTTPGatherer struct {
	client *http.Client
	urls   map[string]string // task -> URL of its service
}

var _ api.Gatherer = (*HTTPGatherer)(nil)

// NewHTTPGatherer returns a fan-out to the task services at urls (task name
// to URL), keeping up to conns idle connections to each, which should cover
// the jobs in flight (api.Config.MaxInFlight).
func NewHTTPGatherer(urls map[string]string, conns int) *HTTPGatherer {
	return &HTTPGatherer{
		client: &http.Client{Transport: newTransport(conns)},
		urls:   urls,
	}
}

// Close closes idle connections.
func (g *HTTPGatherer) Close() { g.client.CloseIdleConnections() }

// Run posts j.Data to every task's service, all at once (one after another
// when j.Serial), and returns one Outcome per task in j.Tasks order.
func (g *HTTPGatherer) Run(ctx context.Context, j gather.Job) []gather.Outcome {
	start := time.Now()
	out := make([]gather.Outcome, len(j.Tasks))
	if j.Serial {
		for i := range j.Tasks {
			tctx, cancel := context.WithTimeout(ctx, j.Timeout)
			g.call(tctx, j, i, start, &out[i])
			cancel()
		}
		return out
	}
	ctx, cancel := context.WithTimeout(ctx, j.Timeout)
	defer cancel()
	var wg sync.WaitGroup
	for i := 1; i < len(j.Tasks); i++ {
		wg.Go(func() { g.call(ctx, j, i, start, &out[i]) })
	}
	if len(j.Tasks) > 0 {
		g.call(ctx, j, 0, start, &out[0]) // the caller's goroutine takes one
	}
	wg.Wait()
	return out
}

// call runs task i of j and fills o.
func (g *HTTPGatherer) call(ctx context.Context, j gather.Job, i int, start time.Time, o *gather.Outcome) {
	began := time.Now()
	o.Task, o.Started, o.Attempts = j.Tasks[i], began.Sub(start), 1
	st, res, worker, e := g.post(ctx, j, j.Tasks[i])
	o.Status, o.Result, o.Worker, o.Error = st, res, worker, e
	o.Elapsed = time.Since(began)
}

func (g *HTTPGatherer) post(ctx context.Context, j gather.Job, task string) (gather.Status, json.RawMessage, string, *gather.Error) {
	url, ok := g.urls[task]
	if !ok {
		return gather.StatusUnavailable, nil, "", &gather.Error{Code: "503", Message: "no service for task " + task}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(j.Data))
	if err != nil {
		return gather.StatusError, nil, "", &gather.Error{Code: job.CodeFailed, Message: err.Error()}
	}
	req.Header.Set("Content-Type", j.ContentType)
	req.Header.Set(job.HeaderID, j.ID)
	if dl, ok := ctx.Deadline(); ok {
		req.Header.Set(job.HeaderDeadline, job.FormatDeadline(dl))
	}
	for k, v := range j.Header {
		req.Header[k] = v
	}
	resp, err := g.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return gather.StatusTimeout, nil, "", &gather.Error{Message: "no reply before the deadline"}
		}
		return gather.StatusUnavailable, nil, "", &gather.Error{Code: "503", Message: err.Error()}
	}
	defer resp.Body.Close()
	worker := resp.Header.Get(job.HeaderWorker)
	body, err := readBody(resp)
	if err != nil {
		if ctx.Err() != nil {
			return gather.StatusTimeout, nil, worker, &gather.Error{Message: "no reply before the deadline"}
		}
		return gather.StatusError, nil, worker, &gather.Error{Code: job.CodeFailed, Message: "reading reply: " + err.Error()}
	}
	if resp.StatusCode != http.StatusOK {
		var eb struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(body, &eb)
		code := strconv.Itoa(resp.StatusCode)
		if code == job.CodeDeadline {
			return gather.StatusTimeout, nil, worker, &gather.Error{Code: code, Message: eb.Error}
		}
		return gather.StatusError, nil, worker, &gather.Error{Code: code, Message: eb.Error}
	}
	if !json.Valid(body) {
		return gather.StatusError, nil, worker, &gather.Error{Code: job.CodeFailed, Message: "worker reply is not valid JSON"}
	}
	return gather.StatusOK, body, worker, nil
}

// readBody reads a reply into one allocation of its announced length.
func readBody(resp *http.Response) ([]byte, error) {
	const maxReply = 1 << 20
	if n := resp.ContentLength; n >= 0 && n <= maxReply {
		b := make([]byte, n)
		_, err := io.ReadFull(resp.Body, b)
		return b, err
	}
	return io.ReadAll(io.LimitReader(resp.Body, maxReply))
}

// TaskService is a baseline task: an HTTP handler that takes the raw image
// as the request body, checks its header as a worker does, runs the
// analyzer and answers its result as JSON, like a worker does over NATS.
type TaskService struct {
	task      string
	id        string
	a         analyzer.Analyzer
	log       *slog.Logger
	maxPixels int64
	bufs      sync.Pool // *[]byte
}

// NewTaskService returns the service of task, running a.
func NewTaskService(task, id string, a analyzer.Analyzer, log *slog.Logger) *TaskService {
	return &TaskService{task: task, id: id, a: a, log: log, maxPixels: worker.Defaults(task).MaxPixels}
}

// maxTaskBody bounds a task request, like the NATS max_payload does.
const maxTaskBody = 8 << 20

// ServeHTTP serves POST /: the body is the image, headers carry the job id,
// content type and deadline.
func (s *TaskService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.WriteHeader(http.StatusOK) // health checks
		return
	}
	n := r.ContentLength
	if n <= 0 || n > maxTaskBody {
		s.fail(w, http.StatusBadRequest, "need a body with a Content-Length up to 8 MiB")
		return
	}
	bp, _ := s.bufs.Get().(*[]byte)
	if bp == nil || int64(cap(*bp)) < n {
		b := make([]byte, n)
		bp = &b
	}
	defer s.bufs.Put(bp)
	data := (*bp)[:n]
	if _, err := io.ReadFull(r.Body, data); err != nil {
		s.fail(w, http.StatusBadRequest, "reading body: "+err.Error())
		return
	}
	// Like a worker: never hand the analyzer an image whose header was not
	// checked, whoever sent it.
	info, err := imageinfo.Inspect(data, s.maxPixels)
	if err != nil {
		s.fail(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	ctx := r.Context()
	if dl, err := job.ParseDeadline(r.Header.Get(job.HeaderDeadline)); err == nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl)
		defer cancel()
	}
	res, err := s.a.Analyze(ctx, analyzer.Input{
		JobID:       r.Header.Get(job.HeaderID),
		Task:        s.task,
		ContentType: info.ContentType,
		Data:        data,
	})
	var body []byte
	if err == nil {
		body, err = json.Marshal(res)
	}
	if err != nil {
		status := http.StatusInternalServerError
		switch {
		case errors.Is(err, analyzer.ErrBadImage):
			status = http.StatusUnprocessableEntity
		case ctx.Err() != nil:
			status = http.StatusGatewayTimeout
		}
		s.fail(w, status, err.Error())
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set(job.HeaderWorker, s.id)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

func (s *TaskService) fail(w http.ResponseWriter, status int, msg string) {
	s.log.Warn("task failed", "task", s.task, "status", status, "err", msg)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(job.HeaderWorker, s.id)
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"error": msg})
	_, _ = w.Write(b)
}

// alwaysReady is the baseline's api.Readier: it has no broker to lose.
type alwaysReady struct{}

func (alwaysReady) IsConnected() bool { return true }

// NewBaseline returns the baseline's HTTP front: pkg/api's handler over an
// HTTPGatherer. Close the gatherer when done.
func NewBaseline(cfg api.Config, urls map[string]string, log *slog.Logger) (*api.Server, *HTTPGatherer, error) {
	g := NewHTTPGatherer(urls, cfg.MaxInFlight)
	s, err := api.New(cfg, g, alwaysReady{}, log)
	if err != nil {
		return nil, nil, fmt.Errorf("baseline: %w", err)
	}
	return s, g, nil
}
