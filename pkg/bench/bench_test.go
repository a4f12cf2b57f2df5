package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/visionmesh/vision/pkg/api"
	"github.com/visionmesh/vision/pkg/bench"
	"github.com/visionmesh/vision/pkg/gather"
	"github.com/visionmesh/vision/pkg/testimage"
)

// Hot-path benchmarks of the HTTP side and of the whole system in one
// process, for `go test -bench -cpuprofile`:
//
//	go test ./pkg/bench -run '^$' -bench . -benchmem -cpuprofile /tmp/bench.cpu

// fixedGatherer answers every task at once with a fixed result, so that
// BenchmarkAnalyzeHandler measures pkg/api alone: reading and checking the
// image, hashing it, encoding the answer.
type fixedGatherer struct{ result json.RawMessage }

func (g fixedGatherer) Run(_ context.Context, j gather.Job) []gather.Outcome {
	outs := make([]gather.Outcome, len(j.Tasks))
	for i, t := range j.Tasks {
		outs[i] = gather.Outcome{Task: t, Status: gather.StatusOK, Worker: "w-" + t, Attempts: 1, Result: g.result, Elapsed: time.Millisecond}
	}
	return outs
}

type ready struct{}

func (ready) IsConnected() bool { return true }

func BenchmarkAnalyzeHandler(b *testing.B) {
	res := json.RawMessage(`{"simulated":true,"task":"vehicle","work_ms":0,"bytes":20000,"detections":[]}`)
	s, err := api.New(api.Defaults(), fixedGatherer{res}, ready{}, discardLog())
	if err != nil {
		b.Fatal(err)
	}
	for _, size := range []struct {
		name string
		n    int
	}{{"20KB", bench.SmallImage}, {"2MB", bench.LargeImage}} {
		img := testimage.JPEGOfSize(size.n, 1)
		var form bytes.Buffer
		mw := multipart.NewWriter(&form)
		fw, _ := mw.CreateFormFile("file", "image.jpg")
		_, _ = fw.Write(img)
		_ = mw.Close()
		bodies := []struct {
			name, contentType string
			body              []byte
		}{
			{"raw", "image/jpeg", img},
			{"multipart", mw.FormDataContentType(), form.Bytes()},
		}
		for _, body := range bodies {
			b.Run(size.name+"/"+body.name, func(b *testing.B) {
				b.SetBytes(int64(len(img)))
				b.ReportAllocs()
				for b.Loop() {
					req := httptest.NewRequest(http.MethodPost, "/v1/analyze", bytes.NewReader(body.body))
					req.Header.Set("Content-Type", body.contentType)
					w := httptest.NewRecorder()
					s.ServeHTTP(w, req)
					if w.Code != http.StatusOK {
						b.Fatalf("got %d: %s", w.Code, w.Body)
					}
				}
			})
		}
	}
}

// BenchmarkEndToEnd posts a 20 KB image through each system started in this
// process (NATS server, orchestrator, workers, baseline), 16 requests at a
// time. One op is one answered request.
func BenchmarkEndToEnd(b *testing.B) {
	r, err := bench.NewRunner(bench.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = r.Close() })
	if err := r.Start(context.Background(), bench.Topology{Replicas: 1, WorkerConcurrency: 64, Baseline: true}); err != nil {
		b.Fatal(err)
	}
	img := testimage.JPEGOfSize(bench.SmallImage, 1)
	for _, sys := range []bench.System{bench.Concurrent, bench.Serial, bench.Baseline} {
		b.Run(string(sys), func(b *testing.B) {
			url := r.URL(sys)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			defer client.CloseIdleConnections()
			b.SetBytes(int64(len(img)))
			b.ReportAllocs()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := client.Post(url, "image/jpeg", bytes.NewReader(img))
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("got status %d, want 200", resp.StatusCode)
						return
					}
				}
			})
		})
	}
}
