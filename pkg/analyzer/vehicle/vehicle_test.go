package vehicle_test

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"strings"
	"sync"
	"testing"

	"github.com/visionmesh/vision/pkg/analyzer"
	"github.com/visionmesh/vision/pkg/analyzer/vehicle"
	"github.com/visionmesh/vision/pkg/detection"
	"github.com/visionmesh/vision/pkg/modeltest"
	"github.com/visionmesh/vision/pkg/onnx"
	"github.com/visionmesh/vision/pkg/testimage"
)

func newDetector(tb testing.TB) *vehicle.Detector {
	tb.Helper()
	dir := modeltest.Dir(tb, onnx.LibraryName, vehicle.ModelFile)
	d, err := vehicle.New(vehicle.Config{Dir: dir})
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return d
}

func TestPhotos(t *testing.T) {
	d := newDetector(t)
	tests := []struct {
		photo string
		want  string // label that must be found; "" for none at all
	}{
		{"motorcycle_left.png", "motorcycle"},
		{"coffee.png", ""},
		{"astronaut.png", ""},
		{"chelsea.png", ""},
	}
	for _, tc := range tests {
		t.Run(tc.photo, func(t *testing.T) {
			res := modeltest.Analyze(t, d, "vehicle", testimage.Photo(t, tc.photo))
			t.Logf("%s %dx%d in %.1f ms: %+v", tc.photo, res.Width, res.Height, res.InferenceMS, res.Detections)
			if tc.want == "" {
				if len(res.Detections) != 0 {
					t.Errorf("got %+v, want no vehicle", res.Detections)
				}
				return
			}
			if len(res.Detections) == 0 || res.Detections[0].Label != tc.want {
				t.Fatalf("got %+v, want a %s first", res.Detections, tc.want)
			}
			// The motorcycle fills most of the frame.
			b := res.Detections[0].Box
			if b.W*b.H < 0.3*float64(res.Width*res.Height) {
				t.Errorf("got box %+v, want one covering most of the %dx%d frame", b, res.Width, res.Height)
			}
		})
	}
}

func TestConcurrent(t *testing.T) {
	d := newDetector(t)
	data := testimage.Photo(t, "motorcycle_left.png")
	want := modeltest.Analyze(t, d, "vehicle", data)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := modeltest.Analyze(t, d, "vehicle", data)
			if len(got.Detections) != len(want.Detections) || got.Detections[0] != want.Detections[0] {
				t.Errorf("got %+v, want %+v", got.Detections, want.Detections)
			}
		}()
	}
	wg.Wait()
}

func TestBadImage(t *testing.T) {
	d := newDetector(t)
	_, err := d.Analyze(context.Background(), analyzer.Input{Data: []byte("not an image")})
	if !errors.Is(err, analyzer.ErrBadImage) {
		t.Errorf("got %v, want ErrBadImage", err)
	}
	big := pngHeader(3000, 2000)
	d2, err := vehicle.New(vehicle.Config{Dir: modeltest.Dir(t), MaxPixels: 1_000_000})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d2.Analyze(context.Background(), analyzer.Input{Data: big}); !errors.Is(err, analyzer.ErrBadImage) || !strings.Contains(err.Error(), "more than 1000000 pixels") {
		t.Errorf("got %v, want ErrBadImage for 6 Mpx over a 1 Mpx limit", err)
	}
}

// pngHeader returns the start of a w x h PNG, up to its header: enough for
// the pixel limit, which is checked before any pixel is decoded.
func pngHeader(w, h uint32) []byte {
	ihdr := []byte("IHDR")
	ihdr = binary.BigEndian.AppendUint32(ihdr, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 2, 0, 0, 0) // 8-bit RGB
	out := []byte("\x89PNG\r\n\x1a\n")
	out = binary.BigEndian.AppendUint32(out, uint32(len(ihdr)-4))
	out = append(out, ihdr...)
	return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(ihdr))
}

func TestMissingModel(t *testing.T) {
	_, err := vehicle.New(vehicle.Config{Dir: t.TempDir()})
	if !errors.Is(err, onnx.ErrMissing) {
		t.Fatalf("got %v, want ErrMissing", err)
	}
	t.Log(err)
}

func BenchmarkAnalyze(b *testing.B) {
	d := newDetector(b)
	data := testimage.Photo(b, "motorcycle_left.png")
	var ms []float64
	for b.Loop() {
		ms = append(ms, modeltest.Analyze(b, d, "vehicle", data).InferenceMS)
	}
	b.ReportMetric(detection.Median(ms), "p50-inference-ms")
}
