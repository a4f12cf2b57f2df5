package gather_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/visionmesh/vision/pkg/analyzer/simulate"
	"github.com/visionmesh/vision/pkg/embednats"
	"github.com/visionmesh/vision/pkg/gather"
	"github.com/visionmesh/vision/pkg/job"
	"github.com/visionmesh/vision/pkg/testimage"
	"github.com/visionmesh/vision/pkg/worker"
)

// The gather round trip, measured against an embedded NATS server: publish
// the image to three tasks, gather three replies. Two kinds of responder:
// a bare subscriber that answers at once (the cost of gather and the
// broker alone), and the real worker with a zero-work analyzer (plus the
// cost of pkg/worker).
//
//	go test ./pkg/gather -run '^$' -bench . -benchmem -cpuprofile /tmp/gather.cpu

var benchTasks = []string{"vehicle", "plate", "face"}

// benchNATS starts an embedded NATS server for b and returns its URL.
func benchNATS(b *testing.B) string {
	b.Helper()
	s, err := embednats.Start(embednats.Options{Port: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s.ClientURL()
}

// benchConnect connects to url with the orchestrator's inbox prefix.
func benchConnect(b *testing.B, url string) *nats.Conn {
	b.Helper()
	nc, err := nats.Connect(url, nats.CustomInboxPrefix(gather.Defaults().InboxPrefix))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	return nc
}

// benchBareResponder answers every job of every task at once with a fixed
// JSON result, on its own connection.
func benchBareResponder(b *testing.B, url string) {
	b.Helper()
	nc := benchConnect(b, url)
	body := []byte(`{"simulated":true,"task":"bench","work_ms":0,"bytes":0,"detections":[]}`)
	for _, task := range benchTasks {
		_, err := nc.QueueSubscribe(job.Subject(job.DefaultPrefix, task), task, func(m *nats.Msg) {
			_ = nc.PublishMsg(&nats.Msg{Subject: m.Reply, Data: body, Header: nats.Header{job.HeaderWorker: {"bench-" + task}}})
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		b.Fatal(err)
	}
}

// benchWorkers starts one real worker per task, each on its own
// connection, with a zero-work simulated analyzer.
func benchWorkers(b *testing.B, url string) {
	b.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	for _, task := range benchTasks {
		nc := benchConnect(b, url)
		a, err := simulate.New(simulate.Config{})
		if err != nil {
			b.Fatal(err)
		}
		cfg := worker.Defaults(task)
		cfg.Concurrency = 64
		w, err := worker.New(nc, a, cfg, log)
		if err != nil {
			b.Fatal(err)
		}
		if err := w.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = w.Shutdown(ctx)
		})
	}
}

func BenchmarkRun(b *testing.B) {
	responders := []struct {
		name  string
		start func(*testing.B, string)
	}{
		{"bare", benchBareResponder},
		{"worker", benchWorkers},
	}
	cases := []struct {
		name     string
		size     int
		serial   bool
		parallel bool
	}{
		{"20KB", 20_000, false, false},
		{"20KB/serial", 20_000, true, false},
		{"20KB/parallel", 20_000, false, true},
		{"2MB", 2_000_000, false, false},
	}
	for _, resp := range responders {
		b.Run(resp.name, func(b *testing.B) {
			url := benchNATS(b)
			resp.start(b, url)
			g, err := gather.New(benchConnect(b, url), gather.Defaults())
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = g.Close() })
			for _, tc := range cases {
				b.Run(tc.name, func(b *testing.B) {
					j := gather.Job{
						ID:          "0b6f4ad3-5e49-4e1a-9c3c-4f9b0c0a7e21",
						Tasks:       benchTasks,
						Data:        testimage.JPEGOfSize(tc.size, 1),
						ContentType: "image/jpeg",
						Timeout:     5 * time.Second,
						Serial:      tc.serial,
					}
					b.SetBytes(int64(len(j.Data)))
					b.ReportAllocs()
					if tc.parallel {
						b.SetParallelism(8) // 16 concurrent jobs on 2 CPUs
						b.RunParallel(func(pb *testing.PB) {
							for pb.Next() {
								if err := benchCheck(g.Run(context.Background(), j)); err != "" {
									b.Error(err)
									return
								}
							}
						})
					} else {
						for b.Loop() {
							if err := benchCheck(g.Run(context.Background(), j)); err != "" {
								b.Fatal(err)
							}
						}
					}
					if n := g.Pending(); n != 0 {
						b.Fatalf("got %d pending reply subjects after the runs, want 0", n)
					}
				})
			}
		})
	}
}

// benchCheck returns a description of the first task that is not ok.
func benchCheck(outs []gather.Outcome) string {
	for _, o := range outs {
		if o.Status != gather.StatusOK {
			msg := ""
			if o.Error != nil {
				msg = o.Error.Message
			}
			return o.Task + ": " + string(o.Status) + " " + msg
		}
	}
	return ""
}
