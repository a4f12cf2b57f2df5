package imageinfo_test

import (
	"errors"
	"testing"

	"github.com/visionmesh/vision/pkg/imageinfo"
	"github.com/visionmesh/vision/pkg/testimage"
)

// FuzzInspect checks that Inspect never panics, that every error wraps
// exactly one sentinel, and that an accepted image respects the pixel limit.
// Seeds beyond these live in testdata/fuzz/FuzzInspect.
func FuzzInspect(f *testing.F) {
	jpg := testimage.JPEG(16, 16, 75, 1)
	pngData := testimage.PNG(8, 8, 1)
	gifData := testimage.GIF(8, 8)
	for _, data := range [][]byte{jpg, jpg[:len(jpg)/2], pngData, pngData[:len(pngData)-6], gifData, gifData[:20]} {
		f.Add(data, int64(limit))
	}
	f.Add(pngHeader(50000, 50000, true), int64(limit))
	f.Add(gifHeader(0, 7), int64(limit))
	f.Add(jpg, int64(0))

	formats := map[string]string{"jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif"}
	f.Fuzz(func(t *testing.T, data []byte, maxPixels int64) {
		info, err := imageinfo.Inspect(data, maxPixels)
		if err != nil {
			if info != (imageinfo.Info{}) {
				t.Errorf("info with error %v: got %+v, want zero", err, info)
			}
			checkOneSentinel(t, err)
			if len(data) == 0 && !errors.Is(err, imageinfo.ErrEmpty) {
				t.Errorf("empty data: got %v, want %v", err, imageinfo.ErrEmpty)
			}
			return
		}
		if info.Width <= 0 || info.Height <= 0 {
			t.Fatalf("accepted %dx%d, want positive sides", info.Width, info.Height)
		}
		if px := int64(info.Width) * int64(info.Height); px > maxPixels {
			t.Errorf("accepted %dx%d = %d pixels, want at most %d", info.Width, info.Height, px, maxPixels)
		}
		if ct, ok := formats[info.Format]; !ok || ct != info.ContentType {
			t.Errorf("format, content type: got %q, %q", info.Format, info.ContentType)
		}
	})
}
