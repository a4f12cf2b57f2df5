package testimage_test

import (
	"bytes"
	"image"
	_ "image/gif"
	_ "image/jpeg"
	_ "image/png"
	"testing"
	"time"

	"github.com/visionmesh/vision/pkg/testimage"
)

// mustDecode decodes data fully and checks its format and size.
func mustDecode(t *testing.T, data []byte, wantFormat string, wantW, wantH int) {
	t.Helper()
	img, format, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("decode: got %v, want nil", err)
	}
	if format != wantFormat {
		t.Errorf("format: got %q, want %q", format, wantFormat)
	}
	if b := img.Bounds(); b.Dx() != wantW || b.Dy() != wantH {
		t.Errorf("size: got %dx%d, want %dx%d", b.Dx(), b.Dy(), wantW, wantH)
	}
}

func TestCompose(t *testing.T) {
	tests := []struct {
		name   string
		make   func() []byte
		format string
		w, h   int
	}{
		{"jpeg", func() []byte { return testimage.JPEG(64, 48, 90, 1) }, "jpeg", 64, 48},
		{"jpeg 1x1", func() []byte { return testimage.JPEG(1, 1, 50, 1) }, "jpeg", 1, 1},
		{"jpeg odd size", func() []byte { return testimage.JPEG(101, 37, 75, 7) }, "jpeg", 101, 37},
		{"png", func() []byte { return testimage.PNG(40, 30, 2) }, "png", 40, 30},
		{"png 1x1", func() []byte { return testimage.PNG(1, 1, 2) }, "png", 1, 1},
		{"gif", func() []byte { return testimage.GIF(33, 17) }, "gif", 33, 17},
		{"gif 1x1", func() []byte { return testimage.GIF(1, 1) }, "gif", 1, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mustDecode(t, tc.make(), tc.format, tc.w, tc.h)
		})
	}
}

func TestDeterministic(t *testing.T) {
	tests := []struct {
		name       string
		a, b, diff func() []byte // diff must differ from a; nil when nothing varies
	}{
		{
			"jpeg",
			func() []byte { return testimage.JPEG(32, 32, 80, 5) },
			func() []byte { return testimage.JPEG(32, 32, 80, 5) },
			func() []byte { return testimage.JPEG(32, 32, 80, 6) },
		},
		{
			"png",
			func() []byte { return testimage.PNG(32, 32, 5) },
			func() []byte { return testimage.PNG(32, 32, 5) },
			func() []byte { return testimage.PNG(32, 32, 6) },
		},
		{
			"gif",
			func() []byte { return testimage.GIF(32, 32) },
			func() []byte { return testimage.GIF(32, 32) },
			nil,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !bytes.Equal(tc.a(), tc.b()) {
				t.Errorf("same arguments gave different bytes")
			}
			if tc.diff != nil && bytes.Equal(tc.a(), tc.diff()) {
				t.Errorf("different seeds gave the same bytes")
			}
		})
	}
}

func TestInvalidSizePanics(t *testing.T) {
	tests := []struct {
		name string
		call func()
	}{
		{"jpeg zero width", func() { testimage.JPEG(0, 10, 80, 1) }},
		{"jpeg too tall", func() { testimage.JPEG(1, 70000, 80, 1) }},
		{"png negative height", func() { testimage.PNG(10, -1, 1) }},
		{"gif zero", func() { testimage.GIF(0, 0) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if r := recover(); r == nil {
					t.Errorf("got no panic, want one")
				}
			}()
			tc.call()
		})
	}
}

func TestJPEGOfSize(t *testing.T) {
	tests := []struct {
		name   string
		target int
		seed   int64
	}{
		{"5KB", 5_000, 1},
		{"20KB", 20_000, 1},
		{"20KB other seed", 20_000, 2},
		{"200KB", 200_000, 3},
		{"2MB", 2_000_000, 1},
	}
	if testing.Short() {
		tests = tests[:3]
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			b := testimage.JPEGOfSize(tc.target, tc.seed)
			took := time.Since(start)
			lo, hi := tc.target*3/4, tc.target*5/4
			if len(b) < lo || len(b) > hi {
				t.Errorf("size: got %d bytes, want %d..%d", len(b), lo, hi)
			}
			cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
			if err != nil || format != "jpeg" {
				t.Fatalf("DecodeConfig: got %q, %v, want jpeg, nil", format, err)
			}
			mustDecode(t, b, "jpeg", cfg.Width, cfg.Height)
			t.Logf("%d bytes (%+.1f%%), %dx%d, built in %v", len(b), 100*float64(len(b)-tc.target)/float64(tc.target), cfg.Width, cfg.Height, took)
		})
	}
}

func TestJPEGOfSizeCachedCopy(t *testing.T) {
	a := testimage.JPEGOfSize(10_000, 9)
	b := testimage.JPEGOfSize(10_000, 9)
	if !bytes.Equal(a, b) {
		t.Fatalf("two calls with the same arguments gave different bytes")
	}
	a[len(a)-1] ^= 0xFF // a caller scribbling on its copy ...
	if c := testimage.JPEGOfSize(10_000, 9); !bytes.Equal(b, c) {
		t.Errorf("... changed what the next caller got")
	}
}

func TestJPEGOfSizeTiny(t *testing.T) {
	b := testimage.JPEGOfSize(10, 1)
	mustDecode(t, b, "jpeg", 8, 8)
}

func BenchmarkJPEGOfSizeUncached(b *testing.B) {
	seed := int64(1000)
	for b.Loop() {
		seed++ // a new seed each time defeats the cache
		testimage.JPEGOfSize(2_000_000, seed)
	}
}
