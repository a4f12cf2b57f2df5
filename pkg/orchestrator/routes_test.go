package orchestrator_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/visionmesh/vision/pkg/discovery"
	"github.com/visionmesh/vision/pkg/testimage"
)

// GET /v1/workers lists the dev mode's one replica of every task.
func TestWorkers(t *testing.T) {
	o := startDev(t)
	var rep discovery.Report
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get("http://" + o.Addr() + "/v1/workers")
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&rep)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("got %d (%v), want 200 and a report", resp.StatusCode, err)
		}
		all := len(rep.Tasks) == 3
		for _, p := range rep.Tasks {
			all = all && p.Replicas == 1
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %+v, want vehicle, plate and face with one replica each", rep.Tasks)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
	for i, want := range []string{"vehicle", "plate", "face"} {
		if got := rep.Tasks[i].Task; got != want {
			t.Errorf("pool %d: got %s, want %s", i, got, want)
		}
	}
}

// With API keys, GET /v1/workers needs one like POST /v1/analyze.
func TestWorkersNeedsKey(t *testing.T) {
	o := startDev(t, "-api-keys", "secret")
	resp, err := http.Get("http://" + o.Addr() + "/v1/workers")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("got %d, want 401", resp.StatusCode)
	}
}

// The web page is served at / and needs no key (it asks for one when the
// API does); GET /v1/analyze is still not a page.
func TestPage(t *testing.T) {
	o := startDev(t, "-api-keys", "secret")
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/", http.StatusOK},
		{"/web/app.js", http.StatusOK},
		{"/v1/analyze", http.StatusMethodNotAllowed},
	} {
		resp, err := http.Get("http://" + o.Addr() + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET %s: got %d, want %d", tc.path, resp.StatusCode, tc.want)
		}
	}
}

// GET /metrics counts the requests by route and the tasks by status.
func TestMetrics(t *testing.T) {
	o := startDev(t)
	base := "http://" + o.Addr()
	resp, err := http.Post(base+"/v1/analyze", "image/jpeg", bytes.NewReader(testimage.JPEG(32, 24, 80, 1)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("analyze: got %d, want 200", resp.StatusCode)
	}
	resp, err = http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(b)
	for _, want := range []string{
		`vision_http_requests_total{code="200",route="POST /v1/analyze"} 1`,
		`vision_task_duration_seconds_count{status="ok",task="vehicle"} 1`,
		`vision_task_duration_seconds_count{status="ok",task="face"} 1`,
		`vision_analyze_image_bytes_count 1`,
		`vision_nats_connected 1`,
		`vision_gather_pending_tasks 0`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("no %q in the scrape", want)
		}
	}
}
