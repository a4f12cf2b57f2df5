package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/visionmesh/vision/pkg/gather"
	"github.com/visionmesh/vision/pkg/imageinfo"
)

// JobStatus is where an async job is.
type JobStatus string

// Async job statuses.
const (
	JobPending JobStatus = "pending" // recorded, not yet taken by an orchestrator
	JobRunning JobStatus = "running" // an orchestrator runs it
	JobDone    JobStatus = "done"    // every task has an outcome
)

// TaskPending is the status of a task of an async job that has no outcome yet.
const TaskPending gather.Status = "pending"

// JobDoc is the stored document of an async job and the body of
// GET /v1/jobs/{id}: the /v1/analyze answer (tasks filled in as they land)
// plus where the job is.
type JobDoc struct {
	Response
	Status JobStatus `json:"status"`
	// HTTPStatus is what /v1/analyze would have answered, once done.
	HTTPStatus int        `json:"http_status,omitempty"`
	Attempt    int        `json:"attempt,omitempty"` // deliveries of the job to an orchestrator
	CreatedAt  time.Time  `json:"created_at"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	DoneAt     *time.Time `json:"done_at,omitempty"`
	// CallbackURL receives the done document (POST, signed).
	CallbackURL string          `json:"callback_url,omitempty"`
	Callback    *CallbackReport `json:"callback,omitempty"`
}

// CallbackReport says what became of a job's callback.
type CallbackReport struct {
	Delivered bool   `json:"delivered"`
	Attempts  int    `json:"attempts"`
	Status    int    `json:"status,omitempty"` // last HTTP status
	Error     string `json:"error,omitempty"`  // last error
}

// JobRequest is an accepted async job, ready to be recorded.
type JobRequest struct {
	Doc     JobDoc // pending, every task TaskPending
	Data    []byte
	Tasks   []string
	Timeout time.Duration
	Serial  bool
	Header  nats.Header // trace context
	// IdempotencyKey, when set, maps to one job id within the retention.
	IdempotencyKey string
}

// JobStore records async jobs and reads their documents (jobs.Store).
type JobStore interface {
	// Submit records the job durably. For an IdempotencyKey already seen
	// it records nothing and returns the earlier job's document with
	// created false. Errors: ErrJobsUnavailable.
	Submit(ctx context.Context, req JobRequest) (doc JobDoc, created bool, err error)
	// Get returns a job's document. Errors: ErrJobNotFound,
	// ErrJobsUnavailable.
	Get(ctx context.Context, id string) (JobDoc, error)
	// Watch sends the job's document now and after every change, and
	// closes the channel after the done document or when ctx ends.
	// Errors: ErrJobNotFound, ErrJobsUnavailable.
	Watch(ctx context.Context, id string) (<-chan JobDoc, error)
}

// EnableJobs serves the async API on st: POST /v1/jobs, GET /v1/jobs/{id}
// and GET /v1/jobs/{id}/events, behind the API keys.
func (s *Server) EnableJobs(st JobStore) {
	s.jobs = st
	s.mux.Handle("POST /v1/jobs", s.auth(http.HandlerFunc(s.handleSubmitJob)))
	s.mux.Handle("GET /v1/jobs/{id}", s.auth(http.HandlerFunc(s.handleGetJob)))
	s.mux.Handle("GET /v1/jobs/{id}/events", s.auth(http.HandlerFunc(s.handleJobEvents)))
}

// submitAnswer is the body of a 202 from POST /v1/jobs.
type submitAnswer struct {
	JobID  string    `json:"job_id"`
	Status JobStatus `json:"status"`
}

// handleSubmitJob serves POST /v1/jobs: the input of /v1/analyze (plus an
// optional callback_url), answered 202 once the job is durably recorded.
func (s *Server) handleSubmitJob(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	in, done, ok := s.accept(w, r, start)
	if !ok {
		return
	}
	defer done()
	cb := r.URL.Query().Get("callback_url")
	if cb == "" {
		cb = in.fields["callback_url"]
	}
	if err := checkCallbackURL(cb, s.cfg.CallbackHosts); err != nil {
		s.fail(w, r, start, err)
		return
	}
	data := in.buf.Bytes()
	sum := sha256.Sum256(data)
	id := uuid.NewString()
	doc := JobDoc{
		Response: Response{
			JobID: id,
			Mode:  in.q.mode,
			Image: imageOf(data, hex.EncodeToString(sum[:]), in.info),
			Tasks: make(map[string]TaskReport, len(in.q.tasks)),
		},
		Status:      JobPending,
		CreatedAt:   time.Now().UTC(),
		CallbackURL: cb,
	}
	for _, t := range in.q.tasks {
		doc.Tasks[t] = TaskReport{Status: TaskPending}
	}
	req := JobRequest{
		Doc:            doc,
		Data:           data,
		Tasks:          in.q.tasks,
		Timeout:        in.q.timeout,
		Serial:         in.q.mode == ModeSerial,
		Header:         traceHeader(r),
		IdempotencyKey: r.Header.Get("Idempotency-Key"),
	}
	// A large image goes to the object store; the stream message then
	// carries its reference, and the job processor deletes it when done.
	ref, err := s.claim(r.Context(), id, data)
	if err != nil {
		s.fail(w, r, start, err)
		return
	}
	if ref != "" {
		req.Data, req.Header = nil, withObject(req.Header, ref)
	}
	got, created, err := s.jobs.Submit(r.Context(), req)
	if ref != "" && (err != nil || !created) {
		s.unclaim(r.Context(), id, ref) // no job of this id will run
	}
	if err == nil && !created && got.Image.SHA256 != doc.Image.SHA256 {
		err = fmt.Errorf("%w: key %q was first used for job %s, with another image", ErrIdempotencyConflict, req.IdempotencyKey, got.JobID)
	}
	if err != nil {
		s.fail(w, r, start, err)
		return
	}
	if !created {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.Header().Set("Location", "/v1/jobs/"+got.JobID)
	writeJSON(w, http.StatusAccepted, submitAnswer{JobID: got.JobID, Status: got.Status})
	s.log.Info("job accepted", "job_id", got.JobID, "created", created, "bytes", len(data),
		"ms", ms(time.Since(start)))
}

// handleGetJob serves GET /v1/jobs/{id}: the job's document.
func (s *Server) handleGetJob(w http.ResponseWriter, r *http.Request) {
	doc, err := s.jobs.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, doc)
}

// TaskEvent is the data of a "task" event of GET /v1/jobs/{id}/events.
type TaskEvent struct {
	JobID string `json:"job_id"`
	Task  string `json:"task"`
	TaskReport
}

// handleJobEvents serves GET /v1/jobs/{id}/events: Server-Sent Events, a
// "task" event per task as it finishes, then a "done" event with the whole
// document, then the stream ends.
func (s *Server) handleJobEvents(w http.ResponseWriter, r *http.Request) {
	ch, err := s.jobs.Watch(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // the stream lasts as long as the job
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	sent := map[string]bool{}
	event := func(name string, v any) bool {
		b, _ := json.Marshal(v)
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	_ = rc.Flush()
	for doc := range ch {
		for name, tr := range doc.Tasks {
			if tr.Status == TaskPending || sent[name] {
				continue
			}
			sent[name] = true
			if !event("task", TaskEvent{JobID: doc.JobID, Task: name, TaskReport: tr}) {
				return
			}
		}
		if doc.Status == JobDone {
			event("done", doc)
			return
		}
	}
}

// intake is a checked upload: the query, the image and its header facts.
type intake struct {
	q      query
	buf    *bytes.Buffer
	info   imageinfo.Info
	fields map[string]string // small multipart text fields (callback_url)
}

// intake reads and checks an upload the way /v1/analyze does. in.buf is set
// even on error and must go back with putBuf.
func (s *Server) intake(w http.ResponseWriter, r *http.Request) (in intake, err error) {
	in.buf = s.bufs.Get().(*bytes.Buffer)
	in.buf.Reset()
	if !s.ready.IsConnected() {
		return in, ErrNotReady
	}
	if in.q, err = parseQuery(r.URL.Query(), s.cfg); err != nil {
		return in, err
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBytes+64<<10)
	in.fields = map[string]string{}
	if err := readImageFields(r, in.buf, s.cfg.MaxBytes, in.fields); err != nil {
		return in, err
	}
	in.info, err = imageinfo.Inspect(in.buf.Bytes(), s.cfg.MaxPixels)
	return in, err
}

func imageOf(data []byte, sum string, info imageinfo.Info) Image {
	return Image{
		Bytes:       len(data),
		SHA256:      sum,
		ContentType: info.ContentType,
		Format:      info.Format,
		Width:       info.Width,
		Height:      info.Height,
	}
}

// checkCallbackURL accepts an empty value or an absolute http(s) URL whose
// host is one of hosts ("*" allows any).
func checkCallbackURL(s string, hosts []string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: callback_url %q: want an absolute http or https URL", ErrBadQuery, s)
	}
	if !slices.Contains(hosts, "*") && !slices.Contains(hosts, u.Hostname()) {
		return fmt.Errorf("%w: callback_url host %q is not allowed (the orchestrator's -callback-hosts)", ErrBadQuery, u.Hostname())
	}
	return nil
}

// Reports turns a job's outcomes into the per-task part of an answer.
func Reports(outs []gather.Outcome) map[string]TaskReport {
	m := make(map[string]TaskReport, len(outs))
	for _, o := range outs {
		m[o.Task] = Report(o)
	}
	return m
}

// Report turns one task's outcome into its part of an answer.
func Report(o gather.Outcome) TaskReport {
	return TaskReport{
		Status:    o.Status,
		StartedMS: ms(o.Started),
		ElapsedMS: ms(o.Elapsed),
		Worker:    o.Worker,
		Attempts:  o.Attempts,
		Result:    o.Result,
		Error:     o.Error,
	}
}

// StatusFor is the HTTP status /v1/analyze answers for outs.
func StatusFor(outs []gather.Outcome) int { return statusFor(outs) }
