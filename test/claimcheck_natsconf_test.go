package test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/visionmesh/vision/pkg/claimcheck"
	"github.com/visionmesh/vision/pkg/worker"
)

// TestNatsConfClaimCheck runs the claim-check as the real nats.conf users:
// the orchestrator creates the bucket, puts and deletes an image without a
// permission violation; a worker (with its inbox prefix) reads it, and can
// neither write, delete nor purge, nor read through another task's inbox.
func TestNatsConfClaimCheck(t *testing.T) {
	url, pw := newNatsConfServer(t)
	onc, oerrs := dialNatsConfOrchestrator(t, url, pw)
	wnc, werrs := dialNatsConf(t, url, "worker-vehicle", pw["worker-vehicle"],
		nats.CustomInboxPrefix(worker.InboxPrefix("vehicle")))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	st, err := claimcheck.New(onc, claimcheck.Defaults())
	if err != nil {
		t.Fatal(err)
	}
	img := bytes.Repeat([]byte("claim-check "), 200_000) // 2.4 MB: many chunks
	const id = "0b6c7c8e-2f0e-4a4b-9a59-2bd0c6a1e8a4"
	ref, err := st.Put(ctx, id, img)
	if err != nil {
		t.Fatalf("orchestrator put: %v (errors %v)", err, oerrs.all())
	}

	f, err := claimcheck.NewFetcher(wnc)
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.Fetch(ctx, ref)
	if err != nil {
		t.Fatalf("worker fetch: %v (errors %v)", err, werrs.all())
	}
	if !bytes.Equal(got, img) {
		t.Fatalf("worker fetched %d bytes, want %d", len(got), len(img))
	}
	flushNatsConf(t, wnc)
	if e := werrs.all(); len(e) > 0 {
		t.Fatalf("worker errors while fetching: %v", e)
	}

	// What a worker may not do. (What it may: its consumer-create
	// permission ends in "C.*", and a "*" in a permission also matches a
	// literal ">" or "*" token, so a worker could create a consumer on every
	// object's chunks. docs/security.md lists this limit.)
	wjs, err := jetstream.New(wnc)
	if err != nil {
		t.Fatal(err)
	}
	wobs, err := wjs.ObjectStore(ctx, "vision_images")
	if err != nil {
		t.Fatalf("worker binds the bucket: %v", err)
	}
	short := func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, 2*time.Second) }
	pctx, pcancel := short()
	if _, err := wobs.PutBytes(pctx, "intruder", []byte("x")); err == nil {
		t.Error("worker put an object, want refused")
	}
	pcancel()
	dctx, dcancel := short()
	if err := wobs.Delete(dctx, id); err == nil {
		t.Error("worker deleted an object, want refused")
	}
	dcancel()
	for _, subj := range []string{
		"$JS.API.STREAM.PURGE.OBJ_vision_images",
		"$JS.API.STREAM.DELETE.OBJ_vision_images",
		"$JS.API.STREAM.UPDATE.OBJ_vision_images",
		"$JS.API.STREAM.INFO.VISION_JOBS",
		"$JS.API.DIRECT.GET.KV_vision_jobs.$KV.vision_jobs." + id,
		"$O.vision_images.M.aW50cnVkZXI=",
	} {
		if _, err := wnc.Request(subj, nil, 500*time.Millisecond); err == nil {
			t.Errorf("worker: %s answered, want refused", subj)
		}
		eventually(t, 5*time.Second, func() error { return werrs.violation("Publish", subj) })
	}
	if _, err := wnc.SubscribeSync("_INBOX.worker-plate.x"); err == nil {
		flushNatsConf(t, wnc)
	}
	eventually(t, 5*time.Second, func() error { return werrs.violation("Subscription", "_INBOX.worker-plate.x") })

	// A worker on nats.go's default inbox prefix cannot fetch.
	dnc, _ := dialNatsConf(t, url, "worker-vehicle", pw["worker-vehicle"])
	df, err := claimcheck.NewFetcher(dnc)
	if err != nil {
		t.Fatal(err)
	}
	fctx, fcancel := short()
	if _, err := df.Fetch(fctx, ref); err == nil {
		t.Error("worker with the default inbox prefix fetched the image, want refused")
	}
	fcancel()

	// The orchestrator deletes it; the worker then finds it missing.
	if err := st.Delete(ctx, ref); err != nil {
		t.Fatalf("orchestrator delete: %v (errors %v)", err, oerrs.all())
	}
	if _, err := f.Fetch(ctx, ref); !errors.Is(err, claimcheck.ErrMissing) {
		t.Errorf("fetch after delete: got %v, want ErrMissing", err)
	}
	flushNatsConf(t, onc)
	if e := oerrs.all(); len(e) > 0 {
		t.Errorf("orchestrator errors: %v", e)
	}
}
