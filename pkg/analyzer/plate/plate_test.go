package plate_test

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"strings"
	"testing"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"

	"github.com/visionmesh/vision/pkg/analyzer/plate"
	"github.com/visionmesh/vision/pkg/detection"
	"github.com/visionmesh/vision/pkg/modeltest"
	"github.com/visionmesh/vision/pkg/onnx"
	"github.com/visionmesh/vision/pkg/testimage"
)

func newReader(tb testing.TB) *plate.Reader {
	tb.Helper()
	dir := modeltest.Dir(tb, plate.Files...)
	r, err := plate.New(plate.Config{Dir: dir})
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return r
}

// plateImage renders text on a white plate with a black border, at (px, py)
// on a plain grey w x h background, and returns it as PNG with the plate's
// rectangle.
func plateImage(tb testing.TB, text string, w, h, px, py int, size float64) ([]byte, image.Rectangle) {
	tb.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.NewUniform(color.RGBA{110, 115, 120, 255}), image.Point{}, draw.Src)
	return drawPlate(tb, img, text, px, py, size)
}

// drawPlate draws a plate with text at (px, py) on img and returns img as PNG
// with the plate's rectangle.
func drawPlate(tb testing.TB, img *image.RGBA, text string, px, py int, size float64) ([]byte, image.Rectangle) {
	tb.Helper()
	f, err := opentype.Parse(gobold.TTF)
	if err != nil {
		tb.Fatal(err)
	}
	face, err := opentype.NewFace(f, &opentype.FaceOptions{Size: size, DPI: 72, Hinting: font.HintingFull})
	if err != nil {
		tb.Fatal(err)
	}
	defer face.Close()
	d := &font.Drawer{Dst: img, Src: image.Black, Face: face}
	tw := d.MeasureString(text).Ceil()
	m := face.Metrics()
	th := (m.Ascent + m.Descent).Ceil()
	pad := int(size / 3)
	r := image.Rect(px, py, px+tw+2*pad, py+th+2*pad)
	draw.Draw(img, r, image.Black, image.Point{}, draw.Src)
	draw.Draw(img, r.Inset(int(size/16)+1), image.White, image.Point{}, draw.Src)
	d.Dot = fixed.P(px+pad, py+pad+m.Ascent.Ceil())
	d.DrawString(text)
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes(), r
}

func TestComposedPlate(t *testing.T) {
	r := newReader(t)
	tests := []struct {
		name      string
		text      string
		w, h      int
		px, py    int
		size      float64
		wantPlate string
	}{
		{"large", "KX 482 TL", 640, 360, 120, 120, 64, "KX482TL"},
		{"small in a big frame", "B 7731 QZ", 1280, 720, 700, 500, 36, "B7731QZ"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, rect := plateImage(t, tc.text, tc.w, tc.h, tc.px, tc.py, tc.size)
			res := modeltest.Analyze(t, r, "plate", data)
			t.Logf("plate at %v: %.1f ms: %+v", rect, res.InferenceMS, res.Detections)
			if len(res.Detections) != 1 {
				t.Fatalf("got %d plates %+v, want 1", len(res.Detections), res.Detections)
			}
			got := res.Detections[0]
			if s := strings.NewReplacer(" ", "", "-", "").Replace(got.Text); s != tc.wantPlate {
				t.Errorf("got text %q, want %q", got.Text, tc.text)
			}
			b := got.Box
			c := image.Pt(int(b.X+b.W/2), int(b.Y+b.H/2))
			if !c.In(rect) {
				t.Errorf("got box %+v centred at %v, want its centre in the plate %v", b, c, rect)
			}
		})
	}
}

// TestPlateOnPhoto draws a plate onto a real photo: only the plate is read.
func TestPlateOnPhoto(t *testing.T) {
	r := newReader(t)
	src, err := png.Decode(bytes.NewReader(testimage.Photo(t, "motorcycle_left.png")))
	if err != nil {
		t.Fatal(err)
	}
	img := image.NewRGBA(src.Bounds())
	draw.Draw(img, img.Bounds(), src, image.Point{}, draw.Src)
	data, rect := drawPlate(t, img, "MH 12 AB 3456", 260, 330, 28)
	res := modeltest.Analyze(t, r, "plate", data)
	t.Logf("plate at %v: %.1f ms: %+v", rect, res.InferenceMS, res.Detections)
	if len(res.Detections) != 1 {
		t.Fatalf("got %d plates %+v, want 1", len(res.Detections), res.Detections)
	}
	if got := strings.ReplaceAll(res.Detections[0].Text, " ", ""); got != "MH12AB3456" {
		t.Errorf("got text %q, want %q", res.Detections[0].Text, "MH 12 AB 3456")
	}
}

func TestPhotosWithoutPlates(t *testing.T) {
	r := newReader(t)
	for _, photo := range []string{"coffee.png", "astronaut.png", "chelsea.png", "motorcycle_left.png"} {
		t.Run(photo, func(t *testing.T) {
			res := modeltest.Analyze(t, r, "plate", testimage.Photo(t, photo))
			t.Logf("%s: %.1f ms: %+v", photo, res.InferenceMS, res.Detections)
			if len(res.Detections) != 0 {
				t.Errorf("got %+v, want no plate", res.Detections)
			}
		})
	}
}

func TestMissingModel(t *testing.T) {
	_, err := plate.New(plate.Config{Dir: t.TempDir()})
	if !errors.Is(err, onnx.ErrMissing) {
		t.Fatalf("got %v, want ErrMissing", err)
	}
}

func BenchmarkAnalyze(b *testing.B) {
	r := newReader(b)
	data, _ := plateImage(b, "KX 482 TL", 640, 360, 120, 120, 64)
	var ms []float64
	for b.Loop() {
		ms = append(ms, modeltest.Analyze(b, r, "plate", data).InferenceMS)
	}
	b.ReportMetric(detection.Median(ms), "p50-inference-ms")
}
