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
	// Warmup and Duration are per zero-work and replica scenario.
	Warmup, Duration time.Duration
	// LongWork is the work of each task in the long-task scenarios, and
	// LongRequests how many requests each system gets there.
	LongWork     time.Duration
	LongRequests int
	// ReplicaWork is the task work of the replica scenarios, Replicas their
	// replica counts and ReplicaClients their client count (enough to keep
	// every replica busy).
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
		Warmup:          time.Second,
		Duration:        5 * time.Second,
		LongWork:        3 * time.Second,
		LongRequests:    2,
		ReplicaWork:     50 * time.Millisecond,
		Replicas:        []int{1, 2, 4},
		ReplicaClients:  32,
		ZeroConcurrency: 64,
	}
}

// QuickPlan is a smoke-test suite for CI: well under a minute.
func QuickPlan() Plan {
	return Plan{
		Clients:         []int{1, 16},
		Warmup:          300 * time.Millisecond,
		Duration:        time.Second,
		LongWork:        300 * time.Millisecond,
		LongRequests:    1,
		ReplicaWork:     50 * time.Millisecond,
		Replicas:        []int{1, 4},
		ReplicaClients:  32,
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
	images := []struct {
		label   string
		size    int
		clients []int
	}{
		{"20KB", SmallImage, p.Clients},
		{"2MB", LargeImage, p.LargeClients},
	}
	for _, img := range images {
		clients := img.clients
		if clients == nil {
			clients = p.Clients
		}
		for _, c := range clients {
			for _, sys := range []System{Concurrent, Serial, Baseline} {
				out = append(out, Scenario{
					Group: GroupZero, Name: scenarioName("zero", img.label, fmt.Sprintf("c%d", c), sys),
					System: sys, Image: img.label, ImageSize: img.size, Clients: c,
					Warmup: p.Warmup, Duration: p.Duration, Topology: zero,
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
		out = append(out, Scenario{
			Group: GroupReplicas, Name: scenarioName("work"+p.ReplicaWork.String(), fmt.Sprintf("r%d", n), fmt.Sprintf("c%d", p.ReplicaClients), Concurrent),
			System: Concurrent, Image: "20KB", ImageSize: SmallImage, Clients: p.ReplicaClients,
			Warmup: p.Warmup, Duration: p.Duration,
			Topology: Topology{Work: p.ReplicaWork, Replicas: n, WorkerConcurrency: 1},
		})
	}
	return out
}
