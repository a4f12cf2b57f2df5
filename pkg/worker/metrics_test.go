package worker_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/visionmesh/vision/pkg/worker"
)

// lockedBuffer is a bytes.Buffer safe for one writer and one reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// -metrics-addr serves the replica's job metrics while it runs.
func TestRunMetrics(t *testing.T) {
	url := startServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	var out lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- worker.Run(ctx, []string{"-task", "face", "-nats", url, "-analyzer", "simulate", "-work", "5ms",
			"-metrics-addr", "127.0.0.1:0"}, func(string) string { return "" }, &out)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})

	addrRE := regexp.MustCompile(`msg="metrics listening" addr=(\S+)`)
	var addr string
	waitFor(t, 10*time.Second, "metrics listening", func() bool {
		if m := addrRE.FindStringSubmatch(out.String()); m != nil {
			addr = m[1]
		}
		return addr != "" && strings.Contains(out.String(), "worker started")
	})

	nc := connect(t, url)
	if m, _ := final(t, send(t, nc, "job-1", nil)); errCode(m) != "" {
		t.Fatalf("job: got error %s, want a result", errCode(m))
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(b)
	for _, want := range []string{
		`vision_worker_jobs_total{status="done",task="face"} 1`,
		`vision_worker_job_duration_seconds_count{status="ok",task="face"} 1`,
		`vision_worker_concurrency{task="face"} 4`,
		`vision_worker_jobs_in_flight{task="face"} 0`,
		`vision_nats_connected 1`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("no %q in the scrape", want)
		}
	}
}
