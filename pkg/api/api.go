// Package api serves the orchestrator's HTTP interface: POST /v1/analyze
// takes one image, checks it, fans it out to the task workers through a
// Gatherer and answers with one JSON document; /healthz and /readyz serve
// liveness and readiness.
package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/visionmesh/vision/pkg/gather"
	"github.com/visionmesh/vision/pkg/job"
)

// Gatherer runs one job across its tasks (gather.Gatherer).
type Gatherer interface {
	Run(ctx context.Context, j gather.Job) []gather.Outcome
}

// Readier reports whether the NATS connection is up (*nats.Conn).
type Readier interface {
	IsConnected() bool
}

var (
	_ Gatherer = (*gather.Gatherer)(nil)
	_ Readier  = (*nats.Conn)(nil)
)

// Config holds the HTTP-side limits.
type Config struct {
	// Tasks are the task names a job runs by default; ?tasks= picks a subset.
	Tasks []string
	// Timeout is the default deadline of a job (each task in serial mode).
	Timeout time.Duration
	// MaxTimeout caps ?timeout=.
	MaxTimeout time.Duration
	// MaxBytes caps the image size; the body may be slightly larger
	// (multipart framing).
	MaxBytes int64
	// MaxPixels caps width*height, read from the image header.
	MaxPixels int64
	// MaxInFlight bounds concurrent analyses; beyond it requests get 503
	// with Retry-After.
	MaxInFlight int
	// MaxInFlightBytes bounds the upload bytes held by admitted requests
	// (from Content-Length; an upload without one counts as MaxBytes).
	// A request that would pass it gets 503 with Retry-After, unless it
	// would be the only one: memory stays bounded with large limits.
	MaxInFlightBytes int64
	// APIKeys, when not empty, are required on /v1/* as a Bearer token or
	// an X-API-Key header.
	APIKeys []string
	// CallbackHosts are the host names a job's callback_url may point at
	// ("*": any). Empty refuses callbacks: an open list would let any
	// client make the orchestrator POST into the private network (SSRF).
	CallbackHosts []string
}

// Defaults returns the default limits.
func Defaults() Config {
	return Config{
		Tasks:            []string{"vehicle", "plate", "face"},
		Timeout:          5 * time.Second,
		MaxTimeout:       60 * time.Second,
		MaxBytes:         7 << 20,
		MaxPixels:        50_000_000,
		MaxInFlight:      256,
		MaxInFlightBytes: 1 << 30,
	}
}

// Validate reports whether c is usable.
func (c Config) Validate() error {
	if len(c.Tasks) == 0 {
		return errors.New("api: no tasks")
	}
	seen := map[string]bool{}
	for _, t := range c.Tasks {
		if err := job.ValidName(t); err != nil {
			return fmt.Errorf("api: task: %w", err)
		}
		if seen[t] {
			return fmt.Errorf("api: task %q listed twice", t)
		}
		seen[t] = true
	}
	if c.Timeout <= 0 || c.MaxTimeout < c.Timeout {
		return fmt.Errorf("api: need 0 < timeout (%v) <= max timeout (%v)", c.Timeout, c.MaxTimeout)
	}
	if c.MaxBytes <= 0 || c.MaxPixels <= 0 || c.MaxInFlight <= 0 || c.MaxInFlightBytes <= 0 {
		return errors.New("api: max bytes, max pixels and max in-flight must be positive")
	}
	return nil
}

// Server is the orchestrator's HTTP handler.
type Server struct {
	cfg   Config
	g     Gatherer
	ready Readier
	log   *slog.Logger
	slots chan struct{}
	// inBytes is the upload bytes reserved by admitted requests.
	inBytes atomic.Int64
	bufs    sync.Pool
	keys    [][]byte
	mux     *http.ServeMux
	obs     Observer // nil: nothing observed
	jobs    JobStore // nil unless EnableJobs

	claims    Claims // nil unless EnableClaims
	inlineMax int64  // largest image sent inline when claims fail
}

// New returns a Server; cfg must be valid.
func New(cfg Config, g Gatherer, ready Readier, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:   cfg,
		g:     g,
		ready: ready,
		log:   log,
		slots: make(chan struct{}, cfg.MaxInFlight),
		bufs:  sync.Pool{New: func() any { return new(bytes.Buffer) }},
		mux:   http.NewServeMux(),
	}
	for _, k := range cfg.APIKeys {
		s.keys = append(s.keys, []byte(k))
	}
	s.mux.Handle("POST /v1/analyze", s.auth(http.HandlerFunc(s.handleAnalyze)))
	s.mux.HandleFunc("GET /healthz", s.handleHealthz)
	s.mux.HandleFunc("GET /readyz", s.handleReadyz)
	return s, nil
}

// Handle adds a route (the web page, metrics) to the server's mux.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// HandleAPI adds a route that, like /v1/analyze, requires an API key when
// keys are configured (GET /v1/workers).
func (s *Server) HandleAPI(pattern string, h http.Handler) { s.mux.Handle(pattern, s.auth(h)) }

// Observer is told what became of analysis requests (metrics). Its methods
// run on the request's goroutine and must not retain their arguments.
type Observer interface {
	// ObserveAnalyze is called once per analysis that ran: the mode, the
	// HTTP status of the answer, the image's size and every task's outcome.
	ObserveAnalyze(mode string, status int, bytes int, outs []gather.Outcome)
	// ObserveRefused is called once per analysis refused before any task
	// ran, with the answer's error code (overloaded, too_large, ...).
	ObserveRefused(code string)
}

// SetObserver makes o observe every analysis; call it before serving.
func (s *Server) SetObserver(o Observer) { s.obs = o }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// auth requires one of the configured API keys, compared in constant time.
func (s *Server) auth(next http.Handler) http.Handler {
	if len(s.keys) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := r.Header.Get("X-API-Key")
		if b, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			got = b
		}
		ok := 0
		for _, k := range s.keys {
			ok |= subtle.ConstantTimeCompare([]byte(got), k)
		}
		if ok != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="vision"`)
			writeError(w, ErrUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// handleHealthz serves GET /healthz: the process is alive.
func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// handleReadyz serves GET /readyz: 200 when connected to NATS, else 503.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	if !s.ready.IsConnected() {
		writeError(w, ErrNotReady)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// Image describes the uploaded image.
type Image struct {
	Bytes       int    `json:"bytes"`
	SHA256      string `json:"sha256"`
	ContentType string `json:"content_type"`
	Format      string `json:"format"`
	Width       int    `json:"width"`
	Height      int    `json:"height"`
}

// TaskReport is one task's part of the response.
type TaskReport struct {
	Status    gather.Status   `json:"status"`
	StartedMS float64         `json:"started_ms"`
	ElapsedMS float64         `json:"elapsed_ms"`
	Worker    string          `json:"worker,omitempty"`
	Attempts  int             `json:"attempts"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *gather.Error   `json:"error,omitempty"`
}

// Response is the body of a /v1/analyze answer.
type Response struct {
	JobID     string                `json:"job_id"`
	Mode      string                `json:"mode"`
	ElapsedMS float64               `json:"elapsed_ms"`
	Image     Image                 `json:"image"`
	Tasks     map[string]TaskReport `json:"tasks"`
}

// handleAnalyze serves POST /v1/analyze: check the image, run every task,
// answer with all outcomes. See statusFor for the HTTP status.
func (s *Server) handleAnalyze(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	in, done, ok := s.accept(w, r, start)
	if !ok {
		return
	}
	defer done()
	data := in.buf.Bytes()
	j := gather.Job{
		ID:          uuid.NewString(),
		Tasks:       in.q.tasks,
		Data:        data,
		ContentType: in.info.ContentType,
		Timeout:     in.q.timeout,
		Serial:      in.q.mode == ModeSerial,
		Header:      traceHeader(r),
	}
	ref, err := s.claim(r.Context(), j.ID, data)
	if err != nil {
		s.fail(w, r, start, err)
		return
	}
	if ref != "" {
		defer s.unclaim(r.Context(), j.ID, ref)
		j.Data, j.Header = nil, withObject(j.Header, ref)
	}
	// Hash while the workers work: it is only needed for the answer.
	sum := make(chan string, 1)
	go func() {
		h := sha256.Sum256(data)
		sum <- hex.EncodeToString(h[:])
	}()
	outs := s.g.Run(r.Context(), j)

	resp := Response{
		JobID: j.ID,
		Mode:  in.q.mode,
		Image: imageOf(data, <-sum, in.info),
		Tasks: Reports(outs),
	}
	resp.ElapsedMS = ms(time.Since(start))
	status := statusFor(outs)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, resp)
	if s.obs != nil {
		s.obs.ObserveAnalyze(in.q.mode, status, len(data), outs)
	}
	s.logJob(r, j, in.q.mode, status, start, outs)
}

// admit takes one of the -max-inflight slots and reserves r's upload
// bytes against -max-inflight-bytes, or reports that the server is full.
func (s *Server) admit(r *http.Request) (release func(), ok bool) {
	want := r.ContentLength
	if want < 0 || want > s.cfg.MaxBytes {
		want = s.cfg.MaxBytes
	}
	select {
	case s.slots <- struct{}{}:
	default:
		return nil, false
	}
	if n := s.inBytes.Add(want); n > s.cfg.MaxInFlightBytes && n != want {
		s.inBytes.Add(-want)
		<-s.slots
		return nil, false
	}
	return func() {
		s.inBytes.Add(-want)
		<-s.slots
	}, true
}

// accept admits an upload (admit) and reads and checks it (intake). When it
// reports false it has answered with the error; otherwise done gives the
// slot and the buffer back.
func (s *Server) accept(w http.ResponseWriter, r *http.Request, start time.Time) (in intake, done func(), ok bool) {
	release, ok := s.admit(r)
	if !ok {
		s.fail(w, r, start, ErrOverloaded)
		return in, nil, false
	}
	in, err := s.intake(w, r)
	done = func() {
		s.putBuf(in.buf)
		release()
	}
	if err != nil {
		s.fail(w, r, start, err)
		done()
		return in, nil, false
	}
	return in, done, true
}

// statusFor picks the HTTP status of an answer: 200 when every task is ok,
// 207 when some are, and when none is: 503 if no task had a worker, 504 if
// any timed out, else 502.
func statusFor(outs []gather.Outcome) int {
	var ok, unavailable, timeout int
	for _, o := range outs {
		switch o.Status {
		case gather.StatusOK:
			ok++
		case gather.StatusUnavailable:
			unavailable++
		case gather.StatusTimeout:
			timeout++
		}
	}
	switch {
	case ok == len(outs):
		return http.StatusOK
	case ok > 0:
		return http.StatusMultiStatus
	case unavailable == len(outs):
		return http.StatusServiceUnavailable
	case timeout > 0:
		return http.StatusGatewayTimeout
	default:
		return http.StatusBadGateway
	}
}

// traceHeader copies the caller's W3C trace context into NATS headers.
func traceHeader(r *http.Request) nats.Header {
	tp := r.Header.Get("Traceparent")
	if tp == "" {
		return nil
	}
	h := nats.Header{}
	h.Set(job.HeaderTraceParent, tp)
	if ts := r.Header.Get("Tracestate"); ts != "" {
		h.Set(job.HeaderTraceState, ts)
	}
	return h
}

// maxPooledBuf keeps one oversized upload from pinning memory in the pool.
const maxPooledBuf = 16 << 20

func (s *Server) putBuf(b *bytes.Buffer) {
	if b.Cap() <= maxPooledBuf {
		s.bufs.Put(b)
	}
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, start time.Time, err error) {
	status := writeError(w, err)
	if s.obs != nil {
		_, code := statusOf(err)
		s.obs.ObserveRefused(code)
	}
	s.log.InfoContext(r.Context(), "analyze refused", "status", status, "err", err.Error(),
		"ms", ms(time.Since(start)), "remote", r.RemoteAddr)
}

func (s *Server) logJob(r *http.Request, j gather.Job, mode string, status int, start time.Time, outs []gather.Outcome) {
	if !s.log.Enabled(r.Context(), slog.LevelInfo) {
		return // building the attributes costs more than the gather's bookkeeping
	}
	attrs := make([]any, 0, len(outs))
	for _, o := range outs {
		attrs = append(attrs, slog.String(o.Task, fmt.Sprintf("%s %.1fms", o.Status, ms(o.Elapsed))))
	}
	s.log.InfoContext(r.Context(), "analyze", "job_id", j.ID, "status", status, "mode", mode,
		"bytes", len(j.Data), "ms", ms(time.Since(start)), slog.Group("tasks", attrs...))
}

// ms converts d to milliseconds with microsecond precision.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
