package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/visionmesh/vision/pkg/analyzer/simulate"
	"github.com/visionmesh/vision/pkg/api"
	"github.com/visionmesh/vision/pkg/bench"
	"github.com/visionmesh/vision/pkg/gather"
	"github.com/visionmesh/vision/pkg/testimage"
)

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newTaskServer serves a zero-work baseline task service for task.
func newTaskServer(t testing.TB, task string, work time.Duration) *httptest.Server {
	t.Helper()
	a, err := simulate.New(simulate.Config{Work: work})
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewServer(bench.NewTaskService(task, task+"-1", a, discardLog()))
	t.Cleanup(s.Close)
	return s
}

func TestHTTPGatherer(t *testing.T) {
	ok := newTaskServer(t, "vehicle", 0)
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusUnprocessableEntity)
		_, _ = w.Write([]byte(`{"error":"bad image"}`))
	}))
	t.Cleanup(bad.Close)
	slow := newTaskServer(t, "face", 10*time.Second)
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()

	g := bench.NewHTTPGatherer(map[string]string{
		"vehicle": ok.URL, "plate": bad.URL, "face": slow.URL, "gone": gone.URL,
	}, 4)
	t.Cleanup(g.Close)
	data := testimage.JPEGOfSize(20_000, 1)

	for _, serial := range []bool{false, true} {
		name := map[bool]string{false: "concurrent", true: "serial"}[serial]
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			outs := g.Run(context.Background(), gather.Job{
				ID: "job-1", Tasks: []string{"vehicle", "plate", "face", "gone", "nobody"},
				Data: data, ContentType: "image/jpeg", Timeout: 300 * time.Millisecond, Serial: serial,
			})
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("got %v for the run, want about the 300ms timeout", took)
			}
			want := []gather.Status{gather.StatusOK, gather.StatusError, gather.StatusTimeout, gather.StatusUnavailable, gather.StatusUnavailable}
			for i, o := range outs {
				if o.Status != want[i] {
					t.Errorf("%s: got status %s (%+v), want %s", o.Task, o.Status, o.Error, want[i])
				}
			}
			var res simulate.Result
			if err := json.Unmarshal(outs[0].Result, &res); err != nil || res.Bytes != len(data) || outs[0].Worker != "vehicle-1" {
				t.Errorf("vehicle: got result %s (%v) from %q, want %d bytes from vehicle-1", outs[0].Result, err, outs[0].Worker, len(data))
			}
			if e := outs[1].Error; e == nil || e.Code != "422" || e.Message != "bad image" {
				t.Errorf("plate: got error %+v, want code 422 and the service's message", e)
			}
		})
	}
}

func TestBaselineAnswersLikeTheOrchestrator(t *testing.T) {
	urls := map[string]string{}
	for _, task := range bench.Tasks {
		urls[task] = newTaskServer(t, task, 0).URL
	}
	cfg := api.Defaults()
	s, g, err := bench.NewBaseline(cfg, urls, discardLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	front := httptest.NewServer(s)
	t.Cleanup(front.Close)

	data := testimage.JPEGOfSize(20_000, 1)
	resp, err := http.Post(front.URL+"/v1/analyze", "image/jpeg", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got api.Response
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || len(got.Tasks) != 3 || got.Image.Bytes != len(data) {
		t.Fatalf("got %d with %+v, want 200 with three tasks", resp.StatusCode, got)
	}
	for task, r := range got.Tasks {
		if r.Status != gather.StatusOK {
			t.Errorf("%s: got %s, want ok", task, r.Status)
		}
	}
}
