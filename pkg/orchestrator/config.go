package orchestrator

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/visionmesh/vision/pkg/api"
	"github.com/visionmesh/vision/pkg/catalog"
	"github.com/visionmesh/vision/pkg/claimcheck"
	"github.com/visionmesh/vision/pkg/gather"
	"github.com/visionmesh/vision/pkg/jobs"
	"github.com/visionmesh/vision/pkg/natsconn"
	"github.com/visionmesh/vision/pkg/tracing"
)

// Config is everything the orchestrator binary is configured with.
type Config struct {
	// Addr is the HTTP listen address.
	Addr   string
	API    api.Config
	Gather gather.Config
	NATS   natsconn.Config

	// HTTP server limits against slow and greedy clients.
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
	ShutdownTimeout   time.Duration

	// Dev runs an embedded NATS server and one replica of every task's
	// worker in this process.
	Dev            bool
	DevNATSPort    int
	DevConcurrency int
	DevKind        string
	DevAnalyzers   catalog.Options

	// Jobs serves the async API (POST /v1/jobs, ...) and runs a job
	// processor; on by default in dev mode. DevStore is the embedded
	// server's JetStream directory.
	Jobs       bool
	JobsConfig jobs.Config
	DevStore   string

	// ClaimCheck sends images above its threshold through a JetStream
	// Object Store bucket instead of inside the task messages.
	ClaimCheck claimcheck.Config

	// PprofAddr, when set, serves /debug/pprof there (keep it on localhost).
	PprofAddr string

	LogFormat string
	LogLevel  string

	// Tracing, when set, traces requests, tasks and (dev mode) jobs; Run
	// sets it from the OTEL_* environment.
	Tracing *tracing.Tracing
}

// ParseFlags reads the orchestrator's flags; environment variables (read
// through getenv) give defaults that flags override.
func ParseFlags(args []string, getenv func(string) string) (Config, error) {
	c := Config{API: api.Defaults(), Gather: gather.Defaults(), JobsConfig: jobs.Defaults(), ClaimCheck: claimcheck.Defaults()}
	env := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("orchestrator", flag.ContinueOnError)
	fs.StringVar(&c.Addr, "addr", env("ADDR", "127.0.0.1:8080"), "HTTP listen address (env ADDR)")
	tasks := fs.String("tasks", env("TASKS", strings.Join(c.API.Tasks, ",")), "comma-separated task names (env TASKS)")
	fs.StringVar(&c.Gather.Prefix, "prefix", env("VISION_PREFIX", c.Gather.Prefix), "subject prefix: jobs go to <prefix>.task.<task> (env VISION_PREFIX)")
	fs.StringVar(&c.Gather.InboxPrefix, "inbox-prefix", env("INBOX_PREFIX", c.Gather.InboxPrefix), "NATS inbox prefix for replies (env INBOX_PREFIX)")
	fs.DurationVar(&c.API.Timeout, "timeout", c.API.Timeout, "default job deadline (per task in serial mode)")
	fs.DurationVar(&c.API.MaxTimeout, "max-timeout", c.API.MaxTimeout, "largest ?timeout= accepted")
	fs.Int64Var(&c.API.MaxBytes, "max-bytes", 0, fmt.Sprintf("largest image in bytes (default %d MiB with claim-check, else %d MiB: under the NATS max_payload)", MaxBytesClaimCheck>>20, c.API.MaxBytes>>20))
	fs.Int64Var(&c.ClaimCheck.Threshold, "claim-check-bytes", c.ClaimCheck.Threshold, "images above this many bytes travel through the JetStream object store bucket "+c.ClaimCheck.Bucket+", not in the task messages (0: never)")
	fs.DurationVar(&c.ClaimCheck.TTL, "claim-check-ttl", c.ClaimCheck.TTL, "how long a claim-checked image is kept if its job never deletes it")
	fs.Int64Var(&c.API.MaxPixels, "max-pixels", c.API.MaxPixels, "largest image in pixels (width*height, read from the header)")
	fs.IntVar(&c.API.MaxInFlight, "max-inflight", c.API.MaxInFlight, "analyses at once; more get 503 with Retry-After")
	fs.Int64Var(&c.API.MaxInFlightBytes, "max-inflight-bytes", c.API.MaxInFlightBytes, "upload bytes held by admitted requests at once (Content-Length, else -max-bytes); more get 503 with Retry-After")
	cbHosts := fs.String("callback-hosts", env("CALLBACK_HOSTS", ""), "comma-separated host names job callbacks may go to, * for any (env CALLBACK_HOSTS; empty: callbacks refused)")
	keys := fs.String("api-keys", env("API_KEYS", ""), "comma-separated API keys required on /v1/* (env API_KEYS; empty: no auth)")
	fs.DurationVar(&c.Gather.Heartbeat, "heartbeat", c.Gather.Heartbeat, "heartbeat interval asked of workers (0: no heartbeats, no leases)")
	fs.DurationVar(&c.Gather.Lease, "lease", c.Gather.Lease, "a dispatch silent for this long is presumed lost and sent again")
	fs.IntVar(&c.Gather.MaxAttempts, "max-attempts", c.Gather.MaxAttempts, "dispatches per task at most (lost replicas, busy replies)")
	fs.DurationVar(&c.ReadHeaderTimeout, "read-header-timeout", 5*time.Second, "HTTP: time to read request headers")
	fs.DurationVar(&c.ReadTimeout, "read-timeout", 30*time.Second, "HTTP: time to read a whole request")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", 120*time.Second, "HTTP: keep-alive idle time")
	fs.IntVar(&c.MaxHeaderBytes, "max-header-bytes", 64<<10, "HTTP: largest request header")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long SIGTERM waits for requests in flight")
	fs.BoolVar(&c.Dev, "dev", false, "dev mode: embedded NATS server and every task's worker in this process")
	fs.IntVar(&c.DevNATSPort, "dev-nats-port", 4222, "dev mode: port of the embedded NATS server (-1: any free port)")
	fs.IntVar(&c.DevConcurrency, "dev-concurrency", 4, "dev mode: concurrency of each task's worker")
	fs.StringVar(&c.DevKind, "analyzer", "", fmt.Sprintf("dev mode: analyzer kind for every task %v (default: each task's real analyzer when its models are installed, else simulate)", catalog.Kinds()))
	fs.BoolVar(&c.Jobs, "jobs", false, "async jobs on JetStream: POST /v1/jobs, GET /v1/jobs/{id}[/events] (default true in dev mode)")
	fs.DurationVar(&c.JobsConfig.TTL, "jobs-ttl", c.JobsConfig.TTL, "how long job documents, idempotency keys and unprocessed jobs are kept")
	fs.DurationVar(&c.JobsConfig.AckWait, "jobs-ack-wait", c.JobsConfig.AckWait, "a job whose orchestrator went silent this long goes to another replica")
	fs.IntVar(&c.JobsConfig.Concurrency, "jobs-concurrency", c.JobsConfig.Concurrency, "async jobs one orchestrator runs at once")
	fs.StringVar(&c.JobsConfig.CallbackSecret, "callback-secret", env("CALLBACK_SECRET", ""), "HMAC-SHA256 key of the X-Signature of job callbacks (env CALLBACK_SECRET)")
	fs.StringVar(&c.DevStore, "dev-store", ".cache/nats", "dev mode: JetStream store directory of the embedded server")
	fs.StringVar(&c.PprofAddr, "pprof", "", "serve /debug/pprof on this address, e.g. 127.0.0.1:6060 (off when empty)")
	fs.StringVar(&c.LogFormat, "log-format", env("LOG_FORMAT", "text"), "log format: text or json (env LOG_FORMAT)")
	fs.StringVar(&c.LogLevel, "log-level", env("LOG_LEVEL", "info"), "log level: debug, info, warn, error (env LOG_LEVEL)")
	c.NATS.RegisterFlags(fs, getenv)
	c.DevAnalyzers.RegisterFlags(fs, getenv)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	jobsSet := false
	fs.Visit(func(f *flag.Flag) { jobsSet = jobsSet || f.Name == "jobs" })
	if !jobsSet {
		c.Jobs = c.Dev
	}
	c.JobsConfig.Prefix = c.Gather.Prefix
	if c.API.MaxBytes == 0 {
		c.API.MaxBytes = api.Defaults().MaxBytes
		if c.ClaimCheck.Enabled() {
			c.API.MaxBytes = MaxBytesClaimCheck
		}
	}
	c.DevAnalyzers.MaxPixels = int(c.API.MaxPixels)
	c.API.Tasks = splitList(*tasks)
	c.API.APIKeys = splitList(*keys)
	c.API.CallbackHosts = splitList(*cbHosts)
	if c.NATS.Name == "" {
		c.NATS.Name = "orchestrator"
	}
	return c, c.Validate()
}

// Validate reports whether c is usable.
func (c Config) Validate() error {
	if err := c.API.Validate(); err != nil {
		return err
	}
	if err := c.Gather.Validate(); err != nil {
		return err
	}
	if c.Jobs {
		if err := c.JobsConfig.Validate(); err != nil {
			return err
		}
	}
	if err := c.ClaimCheck.Validate(); err != nil {
		return err
	}
	if c.DevConcurrency < 1 {
		return fmt.Errorf("orchestrator: dev concurrency must be at least 1")
	}
	return nil
}

// MaxBytesClaimCheck is the default -max-bytes when claim-check is on: a
// 30 MB camera frame passes, and the body still fits the HTTP read timeout
// on a slow uplink (32 MiB in 30 s is ~9 Mbit/s).
const MaxBytesClaimCheck = 32 << 20

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
