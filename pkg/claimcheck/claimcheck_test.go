package claimcheck_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/visionmesh/vision/pkg/claimcheck"
	"github.com/visionmesh/vision/pkg/embednats"
)

// startJetStream runs an embedded NATS server with JetStream in a temporary
// directory and returns a connection to it.
func startJetStream(tb testing.TB) *nats.Conn {
	tb.Helper()
	dir := tb.TempDir()
	ns, err := embednats.Start(embednats.Options{Port: -1, Tweak: func(o *server.Options) {
		o.JetStream = true
		o.StoreDir = dir
	}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	return nc
}

func TestPutFetchDelete(t *testing.T) {
	nc := startJetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := claimcheck.Defaults()
	st, err := claimcheck.New(nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	f, err := claimcheck.NewFetcher(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Fetch(ctx, "vision_images/nothing"); !errors.Is(err, claimcheck.ErrMissing) {
		t.Fatalf("fetch before the bucket exists: got %v, want ErrMissing", err)
	}

	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<17) // 2 MiB, many chunks
	ref, err := st.Put(ctx, "job-1", data)
	if err != nil {
		t.Fatal(err)
	}
	if want := "vision_images/job-1"; ref != want {
		t.Errorf("ref %q, want %q", ref, want)
	}
	got, err := f.Fetch(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("fetched %d bytes, want the %d put", len(got), len(data))
	}
	if err := st.Delete(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Fetch(ctx, ref); !errors.Is(err, claimcheck.ErrMissing) {
		t.Fatalf("fetch after delete: got %v, want ErrMissing", err)
	}
	if err := st.Delete(ctx, ref); err != nil {
		t.Errorf("second delete: got %v, want nil", err)
	}
	if err := st.Delete(ctx, "other/job-1"); err == nil {
		t.Error("delete in another bucket: got nil, want an error")
	}
}

func TestNeeded(t *testing.T) {
	nc := startJetStream(t)
	for _, tc := range []struct {
		name      string
		threshold int64
		size      int
		want      bool
	}{
		{"under", 100, 99, false},
		{"at", 100, 100, false},
		{"over", 100, 101, true},
		{"disabled", 0, 1 << 30, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := claimcheck.Defaults()
			cfg.Threshold = tc.threshold
			st, err := claimcheck.New(nc, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Needed(tc.size); got != tc.want {
				t.Errorf("Needed(%d) with threshold %d: got %v, want %v", tc.size, tc.threshold, got, tc.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*claimcheck.Config)
		ok   bool
	}{
		{"defaults", func(*claimcheck.Config) {}, true},
		{"disabled without ttl", func(c *claimcheck.Config) { c.Threshold, c.TTL = 0, 0 }, true},
		{"zero value", func(c *claimcheck.Config) { *c = claimcheck.Config{} }, true},
		{"bad bucket", func(c *claimcheck.Config) { c.Bucket = "a.b" }, false},
		{"negative threshold", func(c *claimcheck.Config) { c.Threshold = -1 }, false},
		{"no ttl", func(c *claimcheck.Config) { c.TTL = 0 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := claimcheck.Defaults()
			tc.edit(&c)
			if err := c.Validate(); (err == nil) != tc.ok {
				t.Errorf("got %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
