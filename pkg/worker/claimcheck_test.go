package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/visionmesh/vision/pkg/analyzer"
	"github.com/visionmesh/vision/pkg/claimcheck"
	"github.com/visionmesh/vision/pkg/embednats"
	"github.com/visionmesh/vision/pkg/job"
	"github.com/visionmesh/vision/pkg/testimage"
	"github.com/visionmesh/vision/pkg/worker"
)

// sizeOf answers with the size of the image it was given.
type sizeOf struct{}

func (sizeOf) Analyze(_ context.Context, in analyzer.Input) (any, error) {
	return map[string]any{"bytes": len(in.Data), "content_type": in.ContentType}, nil
}

// failingFetcher fails every fetch with err.
type failingFetcher struct{ err error }

func (f failingFetcher) Fetch(context.Context, string) ([]byte, error) { return nil, f.err }

func TestWorkerClaimCheck(t *testing.T) {
	dir := t.TempDir()
	ns, err := embednats.Start(embednats.Options{Port: -1, Tweak: func(o *server.Options) {
		o.JetStream = true
		o.StoreDir = dir
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	_, nc := startWorker(t, ns.ClientURL(), sizeOf{}, nil)
	st, err := claimcheck.New(nc, claimcheck.Defaults())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	img := testimage.JPEGOfSize(300_000, 1)
	ref, err := st.Put(ctx, "job-1", img)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, ref, code string
	}{
		{"fetched", ref, ""},
		{"missing", "vision_images/no-such-job", job.CodeBadImage},
		{"no bucket", "other_bucket/job-1", job.CodeBadImage},
		{"bad reference", "no-slash", job.CodeBadJob},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := final(t, sendData(t, nc, "j-"+tc.name, map[string]string{job.HeaderObject: tc.ref}, nil))
			if got := errCode(m); got != tc.code {
				t.Fatalf("code %q (%s), want %q", got, m.Header.Get("Nats-Service-Error"), tc.code)
			}
			if tc.code != "" {
				return
			}
			var res struct {
				Bytes       int    `json:"bytes"`
				ContentType string `json:"content_type"`
			}
			if err := json.Unmarshal(m.Data, &res); err != nil {
				t.Fatal(err)
			}
			if res.Bytes != len(img) || res.ContentType != "image/jpeg" {
				t.Errorf("analyzer saw %d bytes of %q, want %d of image/jpeg", res.Bytes, res.ContentType, len(img))
			}
		})
	}
}

func TestWorkerClaimCheckUnavailable(t *testing.T) {
	url := startServer(t)
	nc := connect(t, url)
	cfg := worker.Defaults("face")
	w, err := worker.New(nc, sizeOf{}, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	w.SetFetcher(failingFetcher{errors.New("jetstream not reachable")})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Shutdown(context.Background()) })
	m, _ := final(t, sendData(t, nc, "j1", map[string]string{job.HeaderObject: "vision_images/j1"}, nil))
	if got, want := errCode(m), job.CodeUnavailable; got != want {
		t.Fatalf("code %q, want %q (the orchestrator re-dispatches)", got, want)
	}
	if s := w.Stats(); s.Failed != 1 || s.InFlight != 0 {
		t.Errorf("stats %+v, want one failed, none in flight", s)
	}
}
