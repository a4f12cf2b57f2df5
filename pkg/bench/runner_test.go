package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/visionmesh/vision/pkg/bench"
)

// smokePlan is a suite small enough for a test: every system and both
// kinds of task, for a fraction of a second each.
func smokePlan() []bench.Scenario {
	p := bench.Plan{
		Clients:         []int{2},
		LargeClients:    []int{1},
		Warmup:          100 * time.Millisecond,
		Duration:        300 * time.Millisecond,
		LongWork:        100 * time.Millisecond,
		LongRequests:    1,
		ReplicaWork:     20 * time.Millisecond,
		Replicas:        []int{1, 2},
		ReplicaClients:  4,
		ZeroConcurrency: 4,
	}
	return p.Scenarios()
}

func runSmoke(t *testing.T, opts bench.Options) []bench.Result {
	t.Helper()
	if testing.Short() {
		t.Skip("starts whole systems")
	}
	opts.Dir = t.TempDir()
	r, err := bench.NewRunner(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	scenarios := smokePlan()
	results, err := r.Run(ctx, scenarios)
	if cerr := r.Close(); cerr != nil {
		t.Errorf("close: %v", cerr)
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != len(scenarios) {
		t.Fatalf("got %d results, want %d", len(results), len(scenarios))
	}
	for _, res := range results {
		if res.OK == 0 || res.Errors != 0 || res.RPS <= 0 {
			t.Errorf("%s: got %d ok, %d errors (%s), %.1f req/s; want answers and no errors", res.Name, res.OK, res.Errors, res.ErrorSample, res.RPS)
		}
		if res.Latency.P50 < res.WorkMS || math.Abs(res.Overhead.P50-(res.Latency.P50-res.WorkMS)) > 0.002 {
			t.Errorf("%s: got latency p50 %v and overhead p50 %v with %v ms of work, want overhead = latency - work",
				res.Name, res.Latency.P50, res.Overhead.P50, res.WorkMS)
		}
	}
	return results
}

func TestRunnerInProcess(t *testing.T) {
	runSmoke(t, bench.Options{})
}

func TestRunnerChildProcesses(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	results := runSmoke(t, bench.Options{Exe: exe})
	for _, res := range results {
		if res.Group == bench.GroupZero && res.FrontRSSMB <= 0 {
			t.Errorf("%s: got front peak RSS %v MB, want it measured", res.Name, res.FrontRSSMB)
		}
		if res.Group == bench.GroupZero && res.CPUPerReq["client"] == 0 && res.ServerCPUPerReq == 0 {
			t.Logf("%s: no CPU time measured (too short a run for 10ms ticks)", res.Name)
		}
	}

	rep := bench.Report{Machine: bench.ThisMachine(), Processes: true, Results: results, Targets: bench.Targets(results)}
	var table, js, svg bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "zero/20KB/c2/baseline") {
		t.Errorf("table lacks the baseline row:\n%s", table.String())
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back bench.Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Results) != len(results) {
		t.Errorf("results.json does not read back: %v", err)
	}
	if err := rep.WriteSVG(&svg); err != nil {
		t.Fatal(err)
	}
	checkSVG(t, svg.Bytes())
}
