package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/visionmesh/vision/pkg/job"
)

// JobCounters is a replica's job counters at one moment (worker.Stats has
// them; this package does not import the worker, which imports it).
type JobCounters struct {
	Concurrency int
	InFlight    int64
	Queued      int64
	Done        uint64
	Failed      uint64
	Refused     uint64
	Expired     uint64
}

// Worker holds a worker replica's metrics. It implements the worker's
// Observer (ObserveJob).
type Worker struct {
	reg      *prometheus.Registry
	duration *prometheus.HistogramVec
}

// NewWorker registers the metrics of the replica serving task; counters is
// called at every scrape, nc is read then too (nil: no NATS metrics).
func NewWorker(task string, counters func() JobCounters, nc NATSConn) *Worker {
	m := &Worker{
		reg: newRegistry(),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:        "vision_worker_job_duration_seconds",
			Help:        "Time the analyzer took for a job, by status (ok, bad_image, failed, unavailable, deadline).",
			Buckets:     latencyBuckets,
			ConstLabels: prometheus.Labels{"task": task},
		}, []string{"status"}),
	}
	m.reg.MustRegister(m.duration, &jobCollector{task: task, counters: counters, descs: newJobDescs(task)})
	if nc != nil {
		m.reg.MustRegister(newNATSCollector(nc))
	}
	return m
}

// Handler serves the metrics (GET /metrics).
func (m *Worker) Handler() http.Handler { return handler(m.reg) }

// Registry is the registry the metrics live in.
func (m *Worker) Registry() *prometheus.Registry { return m.reg }

// ObserveJob records a job the analyzer ran: code is "" when it succeeded,
// else the error code the worker replied with (pkg/job).
func (m *Worker) ObserveJob(task, code string, took time.Duration) {
	m.duration.WithLabelValues(statusOfCode(code)).Observe(took.Seconds())
}

func statusOfCode(code string) string {
	switch code {
	case "":
		return "ok"
	case job.CodeBadImage:
		return "bad_image"
	case job.CodeDeadline:
		return "deadline"
	case job.CodeUnavailable:
		return "unavailable"
	default:
		return "failed"
	}
}

type jobDescs struct {
	jobs, inFlight, queued, concurrency *prometheus.Desc
}

func newJobDescs(task string) jobDescs {
	l := prometheus.Labels{"task": task}
	return jobDescs{
		jobs: prometheus.NewDesc("vision_worker_jobs_total",
			"Jobs by outcome: done, failed (bad image or analyzer error), refused (replica full), expired (deadline passed before the work).",
			[]string{"status"}, l),
		inFlight: prometheus.NewDesc("vision_worker_jobs_in_flight",
			"Jobs the analyzer is running now.", nil, l),
		queued: prometheus.NewDesc("vision_worker_jobs_queued",
			"Admitted jobs waiting for a slot.", nil, l),
		concurrency: prometheus.NewDesc("vision_worker_concurrency",
			"Jobs the replica runs at once (-concurrency).", nil, l),
	}
}

// jobCollector reads the replica's own counters at scrape time, so the
// worker keeps one set of counters for STATS and metrics alike.
type jobCollector struct {
	task     string
	counters func() JobCounters
	descs    jobDescs
}

func (c *jobCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.descs.jobs
	ch <- c.descs.inFlight
	ch <- c.descs.queued
	ch <- c.descs.concurrency
}

func (c *jobCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.counters()
	for _, v := range []struct {
		status string
		n      uint64
	}{{"done", s.Done}, {"failed", s.Failed}, {"refused", s.Refused}, {"expired", s.Expired}} {
		ch <- prometheus.MustNewConstMetric(c.descs.jobs, prometheus.CounterValue, float64(v.n), v.status)
	}
	ch <- prometheus.MustNewConstMetric(c.descs.inFlight, prometheus.GaugeValue, float64(s.InFlight))
	ch <- prometheus.MustNewConstMetric(c.descs.queued, prometheus.GaugeValue, float64(s.Queued))
	ch <- prometheus.MustNewConstMetric(c.descs.concurrency, prometheus.GaugeValue, float64(s.Concurrency))
}
