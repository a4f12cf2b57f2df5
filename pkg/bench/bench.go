// Package bench is the load engine behind `go run ./test/bench`: it starts a
// whole system on loopback (a NATS server, the orchestrator, worker replicas
// and, for comparison, a broker-less baseline of HTTP task services behind
// an HTTP fan-out), drives it with N closed-loop clients for a duration or a
// number of requests, and reports requests per second, latency percentiles,
// errors, and the overhead over the slowest task: end-to-end latency minus
// the slowest task's configured work.
//
// Components run as child processes of the benchmark binary (RunChild is
// their entry point), so each has its own runtime, its own garbage
// collector and its own peak RSS, as in production; or, for tests and
// profiling, all in one process.
package bench

import (
	"fmt"
	"time"
)

// System names what serves a scenario's requests.
type System string

// Systems under test.
const (
	// Concurrent is this system: the orchestrator fans the image out over
	// NATS to every task at once (the default mode).
	Concurrent System = "concurrent"
	// Serial is this system with ?mode=serial: one task after another.
	Serial System = "serial"
	// Baseline is the broker-less design: the same HTTP front posting the
	// image to one HTTP service per task, all at once.
	Baseline System = "baseline"
)

// Tasks are the task names every system runs.
var Tasks = []string{"vehicle", "plate", "face"}

// Topology is what must be running for a scenario. Scenarios with the same
// topology share one running system.
type Topology struct {
	// Work is every task's simulated work per job.
	Work time.Duration
	// Replicas is the number of worker processes per task.
	Replicas int
	// WorkerConcurrency is how many jobs one replica runs at once.
	WorkerConcurrency int
	// Baseline also starts the broker-less baseline.
	Baseline bool
}

// Scenario is one measured run against one system.
type Scenario struct {
	// Group is the scenario family, used to lay out the table and chart:
	// GroupZero, GroupLong or GroupReplicas.
	Group string `json:"group"`
	// Name identifies the scenario, e.g. "zero/20KB/c16/concurrent".
	Name   string `json:"name"`
	System System `json:"system"`
	// Image labels the image ("20KB"); ImageSize is the size asked of
	// testimage.JPEGOfSize.
	Image     string `json:"image"`
	ImageSize int    `json:"-"`
	// Clients is the number of clients: closed-loop, or paced at Rate
	// requests per second in all when Rate is set.
	Clients int     `json:"clients"`
	Rate    float64 `json:"rate,omitempty"`
	// Warmup runs before the measurement and is not counted.
	Warmup time.Duration `json:"-"`
	// Duration is the measured time; when Requests is set, the run ends
	// after that many requests instead (no warmup).
	Duration time.Duration `json:"-"`
	Requests int           `json:"requests,omitempty"`
	// Round and Rounds: a scenario may be measured in several rounds,
	// interleaved with the other systems' rounds so that all see the same
	// background load; Runner.Run pools the rounds into one Result.
	Round  int `json:"-"`
	Rounds int `json:"rounds,omitempty"`

	Topology Topology `json:"-"`
}

// Scenario groups.
const (
	GroupZero     = "zero-work"
	GroupLong     = "long-tasks"
	GroupReplicas = "replicas"
)

func (s Scenario) String() string { return s.Name }

// Percentiles summarises a set of durations, in milliseconds.
type Percentiles struct {
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

// Result is what one scenario measured.
type Result struct {
	Scenario
	ImageBytes        int     `json:"image_bytes"`
	WorkMS            float64 `json:"work_ms"`
	Replicas          int     `json:"replicas"`
	WorkerConcurrency int     `json:"worker_concurrency"`

	// OK counts requests answered 200 in the measured window; Errors the
	// others (transport errors and any other status).
	OK          int     `json:"ok"`
	Errors      int     `json:"errors"`
	ErrorSample string  `json:"error_sample,omitempty"`
	ElapsedS    float64 `json:"elapsed_s"`
	RPS         float64 `json:"rps"`
	// Latency is end to end as the client sees it; Overhead is latency
	// minus the slowest task's configured work.
	Latency  Percentiles `json:"latency"`
	Overhead Percentiles `json:"overhead"`

	// FrontRSSMB is the peak RSS of the HTTP front that served the scenario
	// (the orchestrator, or the baseline's fan-out) during the measured
	// window; zero when not known (components in process).
	FrontRSSMB float64 `json:"front_peak_rss_mb,omitempty"`
	// CPUPerReq is CPU time per answered request by component group, in
	// microseconds ("client" is the load generator).
	CPUPerReq map[string]float64 `json:"cpu_us_per_req,omitempty"`
	// ServerCPUPerReq sums CPUPerReq over the serving side (all but the
	// client).
	ServerCPUPerReq float64 `json:"server_cpu_us_per_req,omitempty"`
	// OthersBusy is the share of the machine's CPU time (0-1) used by
	// processes outside the benchmark during the window: noise.
	OthersBusy float64 `json:"others_busy"`
}

// scenarioName builds the conventional scenario name.
func scenarioName(parts ...any) string {
	s := ""
	for i, p := range parts {
		if i > 0 {
			s += "/"
		}
		s += fmt.Sprint(p)
	}
	return s
}
