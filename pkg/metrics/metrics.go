// Package metrics exposes the orchestrator's and the workers' Prometheus
// metrics. Each process owns one registry (no global state): Orchestrator
// instruments the HTTP API and the per-task outcomes of every analysis,
// Worker a replica's jobs. Both also report their NATS connection.
//
// Every name starts with vision_; docs/prometheus.yml scrapes them and
// docs/grafana-dashboard.json draws them.
package metrics

import (
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Buckets of the latency histograms, in seconds: from a millisecond (a
// refused job) to a minute (the largest job deadline).
var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// newRegistry returns a registry with the Go runtime and process collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// handler serves reg in the Prometheus text (or OpenMetrics) format.
func handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		Registry:          reg, // counts its own errors
		EnableOpenMetrics: true,
		Timeout:           10 * time.Second,
	})
}

// NATSConn is what the connection metrics read (*nats.Conn).
type NATSConn interface {
	IsConnected() bool
	Stats() nats.Statistics
}

var _ NATSConn = (*nats.Conn)(nil)

// natsCollector reports a connection's state and counters at scrape time.
type natsCollector struct {
	nc         NATSConn
	connected  *prometheus.Desc
	reconnects *prometheus.Desc
	msgs       *prometheus.Desc
	bytes      *prometheus.Desc
}

func newNATSCollector(nc NATSConn) *natsCollector {
	return &natsCollector{
		nc: nc,
		connected: prometheus.NewDesc("vision_nats_connected",
			"1 while the process is connected to NATS, else 0.", nil, nil),
		reconnects: prometheus.NewDesc("vision_nats_reconnects_total",
			"Times the NATS connection was re-established.", nil, nil),
		msgs: prometheus.NewDesc("vision_nats_messages_total",
			"NATS messages received (in) and sent (out).", []string{"direction"}, nil),
		bytes: prometheus.NewDesc("vision_nats_bytes_total",
			"NATS payload bytes received (in) and sent (out).", []string{"direction"}, nil),
	}
}

func (c *natsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.connected
	ch <- c.reconnects
	ch <- c.msgs
	ch <- c.bytes
}

func (c *natsCollector) Collect(ch chan<- prometheus.Metric) {
	up := 0.0
	if c.nc.IsConnected() {
		up = 1
	}
	s := c.nc.Stats()
	ch <- prometheus.MustNewConstMetric(c.connected, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(c.reconnects, prometheus.CounterValue, float64(s.Reconnects))
	ch <- prometheus.MustNewConstMetric(c.msgs, prometheus.CounterValue, float64(s.InMsgs), "in")
	ch <- prometheus.MustNewConstMetric(c.msgs, prometheus.CounterValue, float64(s.OutMsgs), "out")
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(s.InBytes), "in")
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(s.OutBytes), "out")
}
