package bench

import (
	"fmt"
	"time"
)

// Image sizes of the zero-work scenarios, as asked of testimage.JPEGOfSize.
const (
	SmallImage = 20_000
	LargeImage = 2_000_000
)

// Plan sets the size of a suite.
type Plan struct {
	// Clients are the client counts of the zero-work scenarios.
	Clients []int
	// LargeClients are those of the large image (default Clients).
	LargeClients []int
	// PacedClients clients share PacedRate requests per second in the
	// paced zero-work scenarios (20 KB image): latency under concurrency
	// without saturation. Zero PacedClients: none.
	PacedClients int
	PacedRate    float64
	// Duration is the measured time of each zero-work and replica
	// scenario; a zero-work scenario is measured in Rounds rounds of
	// Duration/Rounds, the systems taking turns. Warmup precedes every
	// round.
	Warmup, Duration time.Duration
	Rounds           int
	// LongWork is the work of each task in the long-task scenarios, and
	// LongRequests how many requests each system gets there.
	LongWork     time.Duration
	LongRequests int
	// ReplicaWork is the task work of the replica scenarios, Replicas their
	// replica counts, and ReplicaClients their clients per replica (enough
	// that no replica waits for work although a job holds its client until
	// its slowest task ends).
	ReplicaWork    time.Duration
	Replicas       []int
	ReplicaClients int
	// ZeroConcurrency is the per-replica concurrency of the zero-work
	// scenarios (the most clients, so no job waits for a slot).
	ZeroConcurrency int
}

// FullPlan is the suite of the README's figures: a few minutes.
func FullPlan() Plan {
	return Plan{
		Clients:         []int{1, 16, 64},
		PacedClients:    16,
		PacedRate:       500,
		Warmup:          500 * time.Millisecond,
		Duration:        6 * time.Second,
		Rounds:          3,
		LongWork:        3 * time.Second,
		LongRequests:    2,
		ReplicaWork:     50 * time.Millisecond,
		Replicas:        []int{1, 2, 4},
		ReplicaClients:  16,
		ZeroConcurrency: 64,
	}
}

// QuickPlan is a smoke-test suite for CI: well under a minute.
func QuickPlan() Plan {
	return Plan{
		Clients:         []int{1, 16},
		PacedClients:    16,
		PacedRate:       500,
		Warmup:          300 * time.Millisecond,
		Duration:        time.Second,
		Rounds:          1,
		LongWork:        300 * time.Millisecond,
		LongRequests:    1,
		ReplicaWork:     50 * time.Millisecond,
		Replicas:        []int{1, 4},
		ReplicaClients:  16,
		ZeroConcurrency: 64,
	}
}

// Scenarios lists the plan's scenarios, grouped so that each system starts
// once: zero-work (both images, every client count, the three systems side
// by side), long tasks (the serial-versus-concurrent experiment), and the
// replica scaling of this system.
func (p Plan) Scenarios() []Scenario {
	var out []Scenario
	zero := Topology{Replicas: 1, WorkerConcurrency: p.ZeroConcurrency, Baseline: true}
	rounds := max(p.Rounds, 1)
	type cell struct {
		image   string
		size    int
		clients int
		rate    float64
	}
	var cells []cell
	for _, c := range p.Clients {
		cells = append(cells, cell{"20KB", SmallImage, c, 0})
	}
	if p.PacedClients > 0 {
		cells = append(cells, cell{"20KB", SmallImage, p.PacedClients, p.PacedRate})
	}
	large := p.LargeClients
	if large == nil {
		large = p.Clients
	}
	for _, c := range large {
		cells = append(cells, cell{"2MB", LargeImage, c, 0})
	}
	for _, c := range cells {
		clients := fmt.Sprintf("c%d", c.clients)
		if c.rate > 0 {
			clients += fmt.Sprintf("-%grps", c.rate)
		}
		for round := 1; round <= rounds; round++ {
			for _, sys := range []System{Concurrent, Serial, Baseline} {
				out = append(out, Scenario{
					Group: GroupZero, Name: scenarioName("zero", c.image, clients, sys),
					System: sys, Image: c.image, ImageSize: c.size, Clients: c.clients, Rate: c.rate,
					Warmup: p.Warmup, Duration: p.Duration / time.Duration(rounds),
					Round: round, Rounds: rounds, Topology: zero,
				})
			}
		}
	}
	long := Topology{Work: p.LongWork, Replicas: 1, WorkerConcurrency: 4, Baseline: true}
	for _, sys := range []System{Concurrent, Serial, Baseline} {
		out = append(out, Scenario{
			Group: GroupLong, Name: scenarioName("work"+p.LongWork.String(), "c1", sys),
			System: sys, Image: "20KB", ImageSize: SmallImage, Clients: 1,
			Requests: p.LongRequests, Topology: long,
		})
	}
	for _, n := range p.Replicas {
		clients := n * p.ReplicaClients
		out = append(out, Scenario{
			Group: GroupReplicas, Name: scenarioName("work"+p.ReplicaWork.String(), fmt.Sprintf("r%d", n), fmt.Sprintf("c%d", clients), Concurrent),
			System: Concurrent, Image: "20KB", ImageSize: SmallImage, Clients: clients,
			Warmup: p.Warmup, Duration: p.Duration,
			Topology: Topology{Work: p.ReplicaWork, Replicas: n, WorkerConcurrency: 1},
		})
	}
	return out
}
