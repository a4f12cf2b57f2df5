package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/visionmesh/vision/pkg/embednats"
	"github.com/visionmesh/vision/pkg/testimage"
)

// The fault tests print their figures with t.Logf on lines starting with
// FIGURES (go test -v -run TestFault ./test/ | grep FIGURES): requests sent,
// tasks failed and latency, for the README's reliability section.

// TestFaultWorkerKilled SIGKILLs a worker replica while it holds jobs. The
// orchestrator notices the silence (no heartbeat for a lease of 1s) and
// sends those jobs again; the other replica answers them, well within the
// 5s deadline.
func TestFaultWorkerKilled(t *testing.T) {
	ns := startNATS(t)
	a := startWorker(t, ns.ClientURL(), "vehicle", "-work", "1500ms", "-concurrency", "8")
	b := startWorker(t, ns.ClientURL(), "vehicle", "-work", "1500ms", "-concurrency", "8")
	// Default heartbeat 250ms, lease 1s, timeout 5s.
	o := startOrchestrator(t, ns.ClientURL(), "-tasks", "vehicle")
	c := newClient(t, 8)
	img := raw("image/jpeg", testimage.JPEG(64, 48, 90, 1))
	nc := connectNATS(t, ns.ClientURL())

	const n = 6
	tl := newTally()
	answers := make(chan answer, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ans, err := post(c, o.url, "", img)
			tl.add(ans, err, 1)
			if err == nil {
				answers <- ans
			}
		}()
	}

	// Wait until every job runs on one replica or the other, then kill
	// the one holding more.
	held := map[*wproc]int64{}
	waitFor(t, 10*time.Second, func() error {
		var sum int64
		for _, w := range []*wproc{a, b} {
			s, err := workerStats(nc, "vehicle", w.id)
			if err != nil {
				return err
			}
			held[w] = s.InFlight
			sum += s.InFlight
		}
		if sum != n {
			return fmt.Errorf("jobs in flight: got %d, want %d", sum, n)
		}
		return nil
	})
	victim, survivor := a, b
	if held[b] > held[a] {
		victim, survivor = b, a
	}
	lost := held[victim]
	killedAt := time.Now()
	victim.signal(t, syscall.SIGKILL)
	wg.Wait()
	close(answers)

	redispatched := 0
	for ans := range answers {
		if ans.Status != http.StatusOK {
			t.Errorf("status: got %d, want %d; body %s", ans.Status, http.StatusOK, ans.Body)
			continue
		}
		tr := ans.analysis(t).Tasks["vehicle"]
		if tr.Status != "ok" || tr.Worker != survivor.id {
			t.Errorf("vehicle: got %s from %s, want ok from the survivor %s (victim %s)", tr.Status, tr.Worker, survivor.id, victim.id)
		}
		switch tr.Attempts {
		case 1:
		case 2:
			redispatched++
		default:
			t.Errorf("vehicle: attempts %d, want 1 or 2", tr.Attempts)
		}
		if ans.Elapsed > 5*time.Second {
			t.Errorf("answered after %v, want within the 5s deadline", ans.Elapsed)
		}
	}
	if int64(redispatched) != lost {
		t.Errorf("re-dispatched jobs: got %d, want %d (held by the killed replica)", redispatched, lost)
	}
	if code := victim.wait(t, 5*time.Second); code != 128+int(syscall.SIGKILL) {
		t.Errorf("victim exit: got %d, want killed by SIGKILL", code)
	}
	tl.figures(t, fmt.Sprintf("worker SIGKILLed mid-job (2 replicas, 1.5s jobs, lease 1s; %d of %d jobs lost with the replica and re-dispatched; last answer %v after the kill)",
		lost, n, time.Since(killedAt).Round(time.Millisecond)))
	if tl.failed != 0 {
		t.Errorf("tasks failed: got %d, want 0", tl.failed)
	}
}

// TestFaultRollingRestart replaces every replica of every task, one at a
// time (SIGTERM, wait for it to exit 0, start its replacement, wait until
// it is registered), while four clients keep sending images: no task
// fails.
func TestFaultRollingRestart(t *testing.T) {
	ns := startNATS(t)
	url := ns.ClientURL()
	tasks := []string{"vehicle", "plate", "face"}
	args := []string{"-work", "100ms", "-jitter", "100ms"}
	var replicas []*wproc
	for _, task := range tasks {
		for range 2 {
			replicas = append(replicas, startWorker(t, url, task, args...))
		}
	}
	o := startOrchestrator(t, url)
	c := newClient(t, 4)
	img := raw("image/jpeg", testimage.JPEG(64, 48, 90, 1))

	tl := newTally()
	stop := load(c, o.url, "", img, 4, len(tasks), tl)
	defer stop()
	progress := func(more int) {
		t.Helper()
		from := tl.sentSoFar()
		waitFor(t, 20*time.Second, func() error {
			if got := tl.sentSoFar(); got < from+more {
				return fmt.Errorf("requests answered: got %d, want %d", got, from+more)
			}
			return nil
		})
	}
	progress(8)

	var fresh []*wproc
	for _, old := range replicas {
		old.signal(t, syscall.SIGTERM)
		if code := old.wait(t, 30*time.Second); code != 0 {
			t.Errorf("%s exit code: got %d, want 0", old.name, code)
		}
		fresh = append(fresh, startWorker(t, url, old.task, args...))
		progress(4)
	}
	progress(16)
	stop()

	tl.figures(t, "rolling restart (3 tasks x 2 replicas, each replaced in turn, 4 clients, 100-200ms jobs)")
	if tl.failed != 0 || len(tl.errs) != 0 || tl.statuses[http.StatusOK] != tl.sent {
		t.Errorf("tasks failed: got %d (statuses %v, transport errors %v), want 0", tl.failed, tl.statuses, tl.errs)
	}
	for _, w := range fresh {
		if tl.workers[w.id] == 0 {
			t.Errorf("replacement %s answered no job", w.name)
		}
	}
}

// TestFaultNATSRestart stops the NATS server under a running system and
// starts a new one on the same port: while it is down /readyz is 503 and
// requests fail at once with a 503 JSON error; a few seconds after it is
// back, everything works again without restarting any process.
func TestFaultNATSRestart(t *testing.T) {
	port := freePort(t)
	ns := startNATSWith(t, embednats.Options{Port: port})
	url := ns.ClientURL()
	for _, task := range []string{"vehicle", "plate", "face"} {
		startWorker(t, url, task, "-work", "20ms")
	}
	pprof := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	o := startOrchestrator(t, url, "-pprof", pprof)
	c := newClient(t, 1)
	img := raw("image/jpeg", testimage.JPEG(64, 48, 90, 1))
	if a := postImage(t, c, o.url, "", img); a.Status != http.StatusOK {
		t.Fatalf("before: got %d, want %d; body %s", a.Status, http.StatusOK, a.Body)
	}
	goroutinesBefore := goroutines(t, pprof)

	ns.Shutdown()
	ns.WaitForShutdown()
	downAt := time.Now()
	waitFor(t, 10*time.Second, func() error {
		code, err := getStatus(o.url + "/readyz")
		if err != nil {
			return err
		}
		if code != http.StatusServiceUnavailable {
			return fmt.Errorf("readyz: got %d, want %d", code, http.StatusServiceUnavailable)
		}
		return nil
	})
	notReady := time.Since(downAt)

	down := newTally()
	for range 50 {
		a := postImage(t, c, o.url, "", img)
		down.add(a, nil, 3)
		if a.Status != http.StatusServiceUnavailable {
			t.Errorf("while down: got %d, want %d; body %s", a.Status, http.StatusServiceUnavailable, a.Body)
		}
		var e errorReply
		if err := json.Unmarshal(a.Body, &e); err != nil || e.Error == "" || e.Code == "" {
			t.Errorf("while down: body %q, want a JSON error (%v)", a.Body, err)
		}
		if a.Header.Get("Retry-After") == "" {
			t.Errorf("while down: 503 without Retry-After")
		}
		if a.Elapsed >= time.Second {
			t.Errorf("while down: answered after %v, want well under 1s (not the 5s deadline)", a.Elapsed)
		}
	}
	if code, err := getStatus(o.url + "/healthz"); err != nil || code != http.StatusOK {
		t.Errorf("healthz while NATS is down: got %d (%v), want %d", code, err, http.StatusOK)
	}
	// Failing fast leaves nothing behind: no goroutine per refused request.
	// 50 requests: one goroutine left behind by each would show.
	if n := goroutines(t, pprof); n > goroutinesBefore+10 {
		t.Errorf("goroutines while down: got %d, want about %d as before the outage", n, goroutinesBefore)
	} else {
		t.Logf("goroutines: %d before the outage, %d after 50 refused requests", goroutinesBefore, n)
	}

	upAt := time.Now()
	startNATSWith(t, embednats.Options{Port: port})
	waitReady(t, o.url, 10*time.Second)
	ready := time.Since(upAt)
	waitFor(t, 15*time.Second, func() error {
		a, err := post(c, o.url, "", img)
		if err != nil {
			return err
		}
		if a.Status != http.StatusOK {
			return fmt.Errorf("after restart: got %d, want %d; body %s", a.Status, http.StatusOK, a.Body)
		}
		return nil
	})
	recovered := time.Since(upAt)

	after := newTally()
	for range 20 {
		a, err := post(c, o.url, "", img)
		after.add(a, err, 3)
	}
	down.figures(t, fmt.Sprintf("NATS down (readyz 503 %v after the shutdown; every request answered 503 at once)", notReady.Round(time.Millisecond)))
	after.figures(t, fmt.Sprintf("NATS back (readyz 200 %v after the restart, first full answer after %v)", ready.Round(time.Millisecond), recovered.Round(time.Millisecond)))
	if after.failed != 0 || after.statuses[http.StatusOK] != after.sent {
		t.Errorf("after the restart: tasks failed %d, statuses %v (errors %v), want all ok", after.failed, after.statuses, after.errs)
	}
	if n := goroutines(t, pprof); n > goroutinesBefore+10 {
		t.Errorf("goroutines after recovery: got %d, want about %d as before the outage", n, goroutinesBefore)
	}
}

// goroutines reads the orchestrator's goroutine count from its -pprof
// listener.
func goroutines(t *testing.T, pprofAddr string) int {
	t.Helper()
	resp, err := http.Get("http://" + pprofAddr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatalf("pprof: %v", err)
	}
	defer resp.Body.Close()
	var n int
	if _, err := fmt.Fscanf(resp.Body, "goroutine profile: total %d", &n); err != nil {
		t.Fatalf("pprof goroutine profile: %v", err)
	}
	return n
}

// startCluster starts n clustered nats-servers on loopback, all routed to
// the first, and waits until every one sees the n-1 others.
func startCluster(t *testing.T, n int) []*server.Server {
	t.Helper()
	cluster := func(name string, routes string) embednats.Options {
		return embednats.Options{Port: -1, Name: name, Tweak: func(o *server.Options) {
			o.Cluster = server.ClusterOpts{Name: "vision-e2e", Host: "127.0.0.1", Port: -1}
			if routes != "" {
				o.Routes = server.RoutesFromStr(routes)
			}
		}}
	}
	seed := startNATSWith(t, cluster("node-0", ""))
	seedRoute := "nats-route://" + seed.ClusterAddr().String()
	nodes := []*server.Server{seed}
	for i := 1; i < n; i++ {
		nodes = append(nodes, startNATSWith(t, cluster(fmt.Sprintf("node-%d", i), seedRoute)))
	}
	waitFor(t, 20*time.Second, func() error {
		for _, s := range nodes {
			if got := s.NumRemotes(); got != n-1 {
				return fmt.Errorf("%s routes to %d servers, want %d", s.Name(), got, n-1)
			}
		}
		return nil
	})
	return nodes
}

// TestFaultClusterNodeLost runs the system on a three-node cluster: the
// orchestrator on node A, each task's two replicas on nodes B and C. Node
// B is shut down under load; its workers fail over to the other nodes
// and no task fails.
//
// The binaries let nats.go shuffle the servers given in -nats, so to place
// each process on a chosen node it gets that node's URL only, and learns
// the others from the cluster (the connect_urls the server gossips), which
// is what it fails over to.
func TestFaultClusterNodeLost(t *testing.T) {
	nodes := startCluster(t, 3)
	nodeA, nodeB, nodeC := nodes[0], nodes[1], nodes[2]
	tasks := []string{"vehicle", "plate", "face"}
	var onB []*wproc
	for _, task := range tasks {
		onB = append(onB, startWorker(t, nodeB.ClientURL(), task, "-work", "100ms"))
		startWorker(t, nodeC.ClientURL(), task, "-work", "100ms")
	}
	o := startOrchestrator(t, nodeA.ClientURL())
	c := newClient(t, 4)
	img := raw("image/jpeg", testimage.JPEG(64, 48, 90, 1))

	// Interest travels between nodes asynchronously: wait until every
	// task is answered through the cluster.
	waitFor(t, 10*time.Second, func() error {
		a, err := post(c, o.url, "", img)
		if err != nil {
			return err
		}
		if a.Status != http.StatusOK {
			return fmt.Errorf("through the cluster: got %d, want %d; body %s", a.Status, http.StatusOK, a.Body)
		}
		return nil
	})

	tl := newTally()
	stop := load(c, o.url, "", img, 4, len(tasks), tl)
	defer stop()
	progress := func(more int) {
		t.Helper()
		from := tl.sentSoFar()
		waitFor(t, 20*time.Second, func() error {
			if got := tl.sentSoFar(); got < from+more {
				return fmt.Errorf("requests answered: got %d, want %d", got, from+more)
			}
			return nil
		})
	}
	progress(20)
	nodeB.Shutdown()
	nodeB.WaitForShutdown()
	lostAt := time.Now()

	// B's workers reconnect to A or C and answer discovery again.
	nc := connectNATS(t, nodeA.ClientURL())
	waitFor(t, 15*time.Second, func() error {
		for _, w := range onB {
			if _, err := workerStats(nc, w.task, w.id); err != nil {
				return err
			}
		}
		return nil
	})
	failover := time.Since(lostAt)
	before := map[string]int{}
	for _, w := range onB {
		before[w.id] = tl.workerCount(w.id)
	}
	progress(40)
	stop()

	tl.figures(t, fmt.Sprintf("cluster node lost (3 nodes, orchestrator on A, replicas on B and C, B shut down under load of 4 clients; B's workers back on the cluster after %v)", failover.Round(time.Millisecond)))
	if tl.failed != 0 || len(tl.errs) != 0 || tl.statuses[http.StatusOK] != tl.sent {
		t.Errorf("tasks failed: got %d (statuses %v, transport errors %v), want 0", tl.failed, tl.statuses, tl.errs)
	}
	for _, w := range onB {
		if w.exited() {
			t.Errorf("%s exited when its node went down: %v", w.name, w.err)
		}
		// Back on the cluster, it takes its share of jobs again.
		if n := tl.workerCount(w.id); n <= before[w.id] {
			t.Errorf("%s answered %d jobs before failing over and %d in all, want more after", w.name, before[w.id], n)
		}
	}
}

// TestFaultOverload floods an orchestrator limited to 8 analyses at once
// with 64 clients sending 2 MB images to slow workers: the excess is shed
// at once with 503 and Retry-After, nothing hangs, no other 5xx, and the
// orchestrator's memory stays bounded.
func TestFaultOverload(t *testing.T) {
	ns := startNATS(t)
	var workers []*wproc
	for _, task := range []string{"vehicle", "plate", "face"} {
		workers = append(workers, startWorker(t, ns.ClientURL(), task, "-work", "500ms", "-concurrency", "4"))
	}
	o := startOrchestrator(t, ns.ClientURL(), "-max-inflight", "8")
	const clients, perClient = 64, 2
	c := newClient(t, clients)
	img := raw("image/jpeg", testimage.JPEGOfSize(2<<20, 7))

	tl := newTally()
	var (
		mu   sync.Mutex
		shed []answer
	)
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perClient {
				a, err := post(c, o.url, "", img)
				tl.add(a, err, 3)
				if err == nil && a.Status == http.StatusServiceUnavailable {
					mu.Lock()
					shed = append(shed, a)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	rss := o.peakRSS(t)

	tl.figures(t, fmt.Sprintf("overload (64 clients x 2 requests of 2 MB, -max-inflight 8, 500ms jobs; %v in all; orchestrator peak RSS %.1f MiB)", took.Round(time.Millisecond), float64(rss)/(1<<20)))
	if len(tl.errs) != 0 {
		t.Errorf("transport errors (hangs or broken connections): got %v, want none", tl.errs)
	}
	for status, n := range tl.statuses {
		if status != http.StatusOK && status != http.StatusServiceUnavailable {
			t.Errorf("status %d: %d answers, want only 200 and 503", status, n)
		}
	}
	if tl.statuses[http.StatusOK] == 0 || len(shed) == 0 {
		t.Errorf("statuses %v: want some 200 and some 503", tl.statuses)
	}
	for _, a := range shed {
		var e errorReply
		if err := json.Unmarshal(a.Body, &e); err != nil || e.Code != "overloaded" {
			t.Errorf("shed: body %q, want a JSON error with code overloaded (%v)", a.Body, err)
		}
		if a.Header.Get("Retry-After") == "" {
			t.Errorf("shed: 503 without Retry-After")
		}
		if a.Elapsed > 5*time.Second {
			t.Errorf("shed after %v, want at once", a.Elapsed)
		}
	}
	// Accepted requests are answered in full.
	if bad := tl.failed - 3*len(shed); bad != 0 {
		t.Errorf("tasks failed in accepted requests: got %d, want 0", bad)
	}
	if rss > 512<<20 {
		t.Errorf("orchestrator peak RSS: got %d MiB, want under 512 MiB", rss>>20)
	}
	for _, p := range append([]*proc{o.proc}, procsOf(workers)...) {
		if l := p.tail(1 << 20); strings.Contains(strings.ToLower(l), "slow consumer") {
			t.Errorf("%s logged a slow consumer", p.name)
		}
	}
}

func procsOf(ws []*wproc) []*proc {
	out := make([]*proc, len(ws))
	for i, w := range ws {
		out[i] = w.proc
	}
	return out
}
