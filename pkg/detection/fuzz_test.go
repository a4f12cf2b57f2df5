package detection_test

import (
	"errors"
	"math"
	"testing"

	"github.com/visionmesh/vision/pkg/analyzer"
	"github.com/visionmesh/vision/pkg/detection"
	"github.com/visionmesh/vision/pkg/testimage"
)

// FuzzDecode covers the image decoding every real analyzer does before its
// model runs (vehicle, face and plate all call Decode, then Tensor): any
// bytes must give either an image within the pixel limit or an error
// wrapping analyzer.ErrBadImage, never a panic or a huge allocation.
func FuzzDecode(f *testing.F) {
	f.Add(testimage.JPEG(16, 12, 80, 1))
	f.Add(testimage.PNG(7, 5, 2))
	f.Add(testimage.GIF(9, 3))
	jpg := testimage.JPEG(32, 32, 90, 3)
	f.Add(jpg[:len(jpg)/2])
	f.Add([]byte("\x89PNG\r\n\x1a\n"))
	const maxPixels = 1 << 16
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := detection.Decode(data, maxPixels)
		if err != nil {
			if !errors.Is(err, analyzer.ErrBadImage) {
				t.Fatalf("error does not wrap ErrBadImage: %v", err)
			}
			return
		}
		b := img.Bounds()
		if b.Dx()*b.Dy() > maxPixels || b.Dx() <= 0 || b.Dy() <= 0 {
			t.Fatalf("decoded %v, limit %d pixels", b, maxPixels)
		}
		ten := detection.Tensor(img, b, 8, 8, detection.NCHW, [3]float32{}, [3]float32{1, 1, 1})
		if len(ten) != 8*8*3 {
			t.Fatalf("tensor length %d, want %d", len(ten), 8*8*3)
		}
		for _, v := range ten {
			if math.IsNaN(float64(v)) || v < 0 || v > 255 {
				t.Fatalf("tensor value %v out of [0,255]", v)
			}
		}
	})
}
