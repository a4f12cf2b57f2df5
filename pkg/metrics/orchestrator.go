package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/visionmesh/vision/pkg/gather"
)

// Gatherer is what the reply-mux metrics read (*gather.Gatherer).
type Gatherer interface {
	Dropped() uint64
	Pending() int
}

var _ Gatherer = (*gather.Gatherer)(nil)

// Orchestrator holds the orchestrator's metrics. It implements the API's
// Observer (ObserveAnalyze, ObserveRefused) and instruments HTTP handlers.
type Orchestrator struct {
	reg *prometheus.Registry

	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
	refused  *prometheus.CounterVec
	images   prometheus.Histogram
	tasks    *prometheus.HistogramVec
	retries  *prometheus.CounterVec
}

// NewOrchestrator registers the orchestrator's metrics; nc and g are read at
// scrape time (either may be nil: its metrics are left out).
func NewOrchestrator(nc NATSConn, g Gatherer) *Orchestrator {
	m := &Orchestrator{
		reg: newRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vision_http_requests_total",
			Help: "HTTP requests answered, by route (the matched pattern, \"none\" when no route matched) and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vision_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route.",
			Buckets: latencyBuckets,
		}, []string{"route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vision_http_requests_in_flight",
			Help: "HTTP requests being answered now.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vision_analyze_refused_total",
			Help: "Analyses refused before any task ran, by the error code of the answer; code=\"overloaded\" counts requests shed over -max-inflight.",
		}, []string{"code"}),
		images: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vision_analyze_image_bytes",
			Help:    "Size of the images sent to the workers.",
			Buckets: prometheus.ExponentialBuckets(4<<10, 2, 12), // 4 KiB .. 8 MiB
		}),
		tasks: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vision_task_duration_seconds",
			Help:    "Time from a task's first dispatch to its outcome, by task and status (ok, error, timeout, unavailable).",
			Buckets: latencyBuckets,
		}, []string{"task", "status"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vision_task_redispatches_total",
			Help: "Dispatches beyond the first (lost replicas, busy replies), by task.",
		}, []string{"task"}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.inFlight, m.refused, m.images, m.tasks, m.retries)
	if nc != nil {
		m.reg.MustRegister(newNATSCollector(nc))
	}
	if g != nil {
		m.reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "vision_gather_dropped_replies_total",
				Help: "Worker replies that found no waiting task: late (after the deadline), duplicate, or for a finished job.",
			}, func() float64 { return float64(g.Dropped()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "vision_gather_pending_tasks",
				Help: "Tasks of running jobs waiting for a reply.",
			}, func() float64 { return float64(g.Pending()) }),
		)
	}
	return m
}

// Handler serves the metrics (GET /metrics).
func (m *Orchestrator) Handler() http.Handler { return handler(m.reg) }

// Registry is the registry the metrics live in (to add more, or to read
// them in tests).
func (m *Orchestrator) Registry() *prometheus.Registry { return m.reg }

// ObserveAnalyze records one answered analysis: the image's size and every
// task's outcome.
func (m *Orchestrator) ObserveAnalyze(mode string, status int, bytes int, outs []gather.Outcome) {
	m.images.Observe(float64(bytes))
	for _, o := range outs {
		m.tasks.WithLabelValues(o.Task, string(o.Status)).Observe(o.Elapsed.Seconds())
		if o.Attempts > 1 {
			m.retries.WithLabelValues(o.Task).Add(float64(o.Attempts - 1))
		}
	}
}

// ObserveRefused records an analysis refused before any task ran.
func (m *Orchestrator) ObserveRefused(code string) { m.refused.WithLabelValues(code).Inc() }

// Instrument counts h's requests by route and status and times them. h
// should be (or end in) a net/http.ServeMux: the route is the pattern the
// mux matched, which it records in the request.
func (m *Orchestrator) Instrument(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		m.inFlight.Inc()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			m.inFlight.Dec()
			route := r.Pattern
			if route == "" {
				route = "none" // 404s and 405s: no label per random path
			}
			code := sw.status
			if code == 0 {
				code = http.StatusOK
			}
			m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
			m.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
		}()
		h.ServeHTTP(sw, r)
	})
}

// statusWriter remembers the status code of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
