package face_test

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/visionmesh/vision/pkg/analyzer"
	"github.com/visionmesh/vision/pkg/analyzer/face"
	"github.com/visionmesh/vision/pkg/detection"
	"github.com/visionmesh/vision/pkg/modeltest"
	"github.com/visionmesh/vision/pkg/onnx"
	"github.com/visionmesh/vision/pkg/testimage"
)

func newDetector(tb testing.TB) *face.Detector {
	tb.Helper()
	dir := modeltest.Dir(tb, onnx.LibraryName, face.ModelFile)
	d, err := face.New(face.Config{Dir: dir})
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return d
}

func TestPhotos(t *testing.T) {
	d := newDetector(t)
	tests := []struct {
		photo string
		faces int
		// where the face's centre must be, for a photo with one face
		cx, cy float64
	}{
		{photo: "astronaut.png", faces: 1, cx: 215, cy: 100},
		{photo: "camera.png", faces: 1, cx: 215, cy: 150},
		{photo: "coffee.png"},
		{photo: "motorcycle_left.png"},
		{photo: "chelsea.png"}, // a cat: BlazeFace scores its face 0.67, under the 0.7 default
	}
	for _, tc := range tests {
		t.Run(tc.photo, func(t *testing.T) {
			res := modeltest.Analyze(t, d, "face", testimage.Photo(t, tc.photo))
			t.Logf("%s %dx%d in %.1f ms: %+v", tc.photo, res.Width, res.Height, res.InferenceMS, res.Detections)
			if len(res.Detections) != tc.faces {
				t.Fatalf("got %d faces %+v, want %d", len(res.Detections), res.Detections, tc.faces)
			}
			if tc.faces != 1 {
				return
			}
			b := res.Detections[0].Box
			if tc.cx < b.X || tc.cx > b.X+b.W || tc.cy < b.Y || tc.cy > b.Y+b.H {
				t.Errorf("got box %+v, want one around (%v, %v)", b, tc.cx, tc.cy)
			}
		})
	}
}

// TestTwoFacesWide puts the astronaut twice, side by side, on a wide grey
// canvas: both faces must be found, each where it was pasted.
func TestTwoFacesWide(t *testing.T) {
	d := newDetector(t)
	src, err := png.Decode(bytes.NewReader(testimage.Photo(t, "astronaut.png")))
	if err != nil {
		t.Fatal(err)
	}
	canvas := image.NewRGBA(image.Rect(0, 0, 1400, 600))
	draw.Draw(canvas, canvas.Bounds(), image.NewUniform(color.Gray{Y: 128}), image.Point{}, draw.Src)
	offsets := []image.Point{{40, 40}, {800, 60}}
	for _, o := range offsets {
		draw.Draw(canvas, src.Bounds().Add(o), src, image.Point{}, draw.Src)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, canvas); err != nil {
		t.Fatal(err)
	}
	res := modeltest.Analyze(t, d, "face", buf.Bytes())
	t.Logf("%+v", res.Detections)
	if len(res.Detections) != len(offsets) {
		t.Fatalf("got %d faces %+v, want %d", len(res.Detections), res.Detections, len(offsets))
	}
	for _, o := range offsets {
		c := image.Pt(215, 125).Add(o) // the face's centre in astronaut.png, moved
		found := false
		for _, f := range res.Detections {
			b := f.Box
			found = found || c.In(image.Rect(int(b.X), int(b.Y), int(b.X+b.W), int(b.Y+b.H)))
		}
		if !found {
			t.Errorf("no face around %v in %+v", c, res.Detections)
		}
	}
}

// mirrored returns the photo flipped left to right, as PNG: the same face,
// but not the same pixels.
func mirrored(t *testing.T, photo string) []byte {
	t.Helper()
	src, err := png.Decode(bytes.NewReader(testimage.Photo(t, photo)))
	if err != nil {
		t.Fatal(err)
	}
	b := src.Bounds()
	dst := image.NewRGBA(b)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			dst.Set(b.Max.X-1-(x-b.Min.X), y, src.At(x, y))
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, dst); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRecognition(t *testing.T) {
	dir := modeltest.Dir(t, onnx.LibraryName, face.ModelFile, face.EmbedFile)
	known := t.TempDir()
	if err := os.WriteFile(filepath.Join(known, "eileen.png"), testimage.Photo(t, "astronaut.png"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := face.New(face.Config{Dir: dir, Known: known})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	tests := []struct {
		name string
		data []byte
		want string // the name of the face found; "" for a stranger
	}{
		{"same person mirrored", mirrored(t, "astronaut.png"), "eileen"},
		{"someone else", testimage.Photo(t, "camera.png"), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := modeltest.Analyze(t, d, "face", tc.data)
			t.Logf("%s: %.1f ms: %+v", res.Model.Name, res.InferenceMS, res.Detections)
			if len(res.Detections) != 1 {
				t.Fatalf("got %d faces, want 1", len(res.Detections))
			}
			if got := res.Detections[0].Name; got != tc.want {
				t.Errorf("got name %q (similarity %v), want %q", got, res.Detections[0].Similarity, tc.want)
			}
		})
	}
}

func TestRecognitionKnownWithoutFace(t *testing.T) {
	dir := modeltest.Dir(t, onnx.LibraryName, face.ModelFile, face.EmbedFile)
	known := t.TempDir()
	if err := os.WriteFile(filepath.Join(known, "mug.png"), testimage.Photo(t, "coffee.png"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := face.New(face.Config{Dir: dir, Known: known})
	if err == nil || !strings.Contains(err.Error(), "no face") {
		t.Errorf("got %v, want an error saying mug.png has no face", err)
	}
}

func TestBadImage(t *testing.T) {
	d := newDetector(t)
	_, err := d.Analyze(context.Background(), analyzer.Input{Data: testimage.JPEG(64, 64, 90, 1)[:100]})
	if !errors.Is(err, analyzer.ErrBadImage) {
		t.Errorf("got %v, want ErrBadImage", err)
	}
}

func TestMissingModel(t *testing.T) {
	_, err := face.New(face.Config{Dir: t.TempDir()})
	if !errors.Is(err, onnx.ErrMissing) {
		t.Fatalf("got %v, want ErrMissing", err)
	}
}

func BenchmarkAnalyze(b *testing.B) {
	d := newDetector(b)
	data := testimage.Photo(b, "astronaut.png")
	var ms []float64
	for b.Loop() {
		ms = append(ms, modeltest.Analyze(b, d, "face", data).InferenceMS)
	}
	b.ReportMetric(detection.Median(ms), "p50-inference-ms")
}

func BenchmarkAnalyzeRecognition(b *testing.B) {
	dir := modeltest.Dir(b, onnx.LibraryName, face.ModelFile, face.EmbedFile)
	known := b.TempDir()
	data := testimage.Photo(b, "astronaut.png")
	if err := os.WriteFile(filepath.Join(known, "eileen.png"), data, 0o644); err != nil {
		b.Fatal(err)
	}
	d, err := face.New(face.Config{Dir: dir, Known: known})
	if err != nil {
		b.Fatal(err)
	}
	var ms []float64
	for b.Loop() {
		ms = append(ms, modeltest.Analyze(b, d, "face", data).InferenceMS)
	}
	b.ReportMetric(detection.Median(ms), "p50-inference-ms")
}
