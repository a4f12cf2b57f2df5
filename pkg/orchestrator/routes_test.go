package orchestrator_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/visionmesh/vision/pkg/discovery"
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
