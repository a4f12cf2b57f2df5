package test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/visionmesh/vision/pkg/testimage"
)

// objectGone checks that the claim-checked image of job id was deleted
// from the vision_images bucket.
func objectGone(tb testing.TB, natsURL, id string) {
	tb.Helper()
	nc := connectNATS(tb, natsURL)
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	obs, err := js.ObjectStore(ctx, "vision_images")
	if err != nil {
		tb.Fatalf("bucket vision_images: %v (was the image claim-checked?)", err)
	}
	waitFor(tb, 10*time.Second, func() error {
		info, err := obs.GetInfo(ctx, id, jetstream.GetObjectInfoShowDeleted())
		if err != nil {
			return err // not even a delete marker: the image never went there
		}
		if !info.Deleted {
			return errors.New("object " + id + " still there")
		}
		return nil
	})
	st, err := obs.Status(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	if st.Size() > 64<<10 {
		tb.Errorf("bucket holds %d bytes after the job, want only delete markers", st.Size())
	}
}

// TestE2EClaimCheck sends a 30 MB image through /v1/analyze and /v1/jobs
// of the real binaries: every task ok, and the object deleted afterwards.
func TestE2EClaimCheck(t *testing.T) {
	composed := make(chan []byte, 1)
	go func() { composed <- testimage.JPEGOfSize(30_000_000, 1) }() // ~20 s under -race
	sys := startJobSystem(t, "20ms", "-timeout", "30s")
	img := <-composed
	t.Logf("a %.1f MB JPEG", float64(len(img))/1e6)
	url := sys.nats.ClientURL()
	c := newClient(t, 2)

	t.Run("analyze", func(t *testing.T) {
		a := postImage(t, c, sys.orch.url, "", raw("image/jpeg", img))
		an := a.analysis(t)
		if a.Status != http.StatusOK {
			t.Fatalf("status %d %s, want 200", a.Status, a.Body)
		}
		if an.Image.Bytes != len(img) {
			t.Errorf("image bytes %d, want %d", an.Image.Bytes, len(img))
		}
		for name, tr := range an.Tasks {
			if tr.Status != "ok" {
				t.Errorf("task %s: %s %+v, want ok", name, tr.Status, tr.Error)
			}
		}
		t.Logf("30 MB through /v1/analyze: %v (server %.0f ms)", a.Elapsed.Round(time.Millisecond), an.ElapsedMS)
		objectGone(t, url, an.JobID)
	})

	t.Run("jobs", func(t *testing.T) {
		id := accepted(t, submit(t, c, sys.orch.url, "", form("file", img)))
		d := waitDone(t, c, sys.orch.url, id, 60*time.Second)
		checkAllOK(t, d)
		objectGone(t, url, id)
	})
}

// TestE2EClaimCheckLatency compares a 6 MB image sent inline with the same
// image forced through the object store (-claim-check-bytes 1), on the same
// workers, and reports both (README, "Large images").
func TestE2EClaimCheckLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("figures")
	}
	img := testimage.JPEGOfSize(6_000_000, 2)
	sys := startJobSystem(t, "1ms")
	inline := startOrchestrator(t, sys.nats.ClientURL(), "-claim-check-bytes", "0")
	claim := startOrchestrator(t, sys.nats.ClientURL(), "-claim-check-bytes", "1")
	c := newClient(t, 2)
	const n = 9
	measure := func(base string) (p50, max time.Duration) {
		var ds []time.Duration
		for i := range n + 1 {
			a := postImage(t, c, base, "", raw("image/jpeg", img))
			if a.Status != http.StatusOK {
				t.Fatalf("status %d %s, want 200", a.Status, a.Body)
			}
			if i > 0 { // the first warms up connections and the bucket
				ds = append(ds, a.Elapsed)
			}
		}
		slices.Sort(ds)
		return ds[len(ds)/2], ds[len(ds)-1]
	}
	ip50, imax := measure(inline.url)
	cp50, cmax := measure(claim.url)
	t.Logf("%.1f MB image, 3 tasks, %d requests each: inline p50 %v max %v; claim-check p50 %v max %v",
		float64(len(img))/1e6, n, ip50.Round(time.Millisecond), imax.Round(time.Millisecond),
		cp50.Round(time.Millisecond), cmax.Round(time.Millisecond))
}
