// Package testimage composes deterministic images for tests and benchmarks,
// so that no image files need to be checked in: the same arguments always
// give the same picture (a smooth gradient with seeded noise on top, which
// keeps encoded sizes predictable).
//
// The functions panic on arguments no encoder accepts (a width or height
// below 1 or, for JPEG and GIF, above 65535), like strings.Repeat does on a
// negative count: they are meant for tests, where such a call is a bug.
package testimage

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
)

// noiseAmp is how far, at most, the seeded noise moves each channel away
// from the gradient. Strong enough that a JPEG's size grows about linearly
// with its pixel count, which JPEGOfSize relies on.
const noiseAmp = 40

// JPEG returns a width x height baseline JPEG of a gradient with noise drawn
// from seed, encoded at quality (1-100; out-of-range values are clamped).
func JPEG(width, height, quality int, seed int64) []byte {
	checkSize("JPEG", width, height, 65535)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, compose(width, height, seed), &jpeg.Options{Quality: quality}); err != nil {
		panic(fmt.Sprintf("testimage: JPEG %dx%d: %v", width, height, err))
	}
	return buf.Bytes()
}

// PNG returns a width x height opaque RGB PNG of a gradient with noise drawn
// from seed.
func PNG(width, height int, seed int64) []byte {
	checkSize("PNG", width, height, 1<<20)
	var buf bytes.Buffer
	if err := png.Encode(&buf, compose(width, height, seed)); err != nil {
		panic(fmt.Sprintf("testimage: PNG %dx%d: %v", width, height, err))
	}
	return buf.Bytes()
}

// GIF returns a width x height single-frame GIF of a diagonal gradient over
// a 256-colour palette.
func GIF(width, height int) []byte {
	checkSize("GIF", width, height, 65535)
	pal := make(color.Palette, 256)
	for i := range pal {
		pal[i] = color.RGBA{R: uint8(i), G: uint8(255 - i), B: 128, A: 255}
	}
	img := image.NewPaletted(image.Rect(0, 0, width, height), pal)
	for y := range height {
		row := img.Pix[y*img.Stride : y*img.Stride+width]
		for x := range row {
			row[x] = uint8(255 * (x + y) / (width + height))
		}
	}
	var buf bytes.Buffer
	if err := gif.Encode(&buf, img, nil); err != nil {
		panic(fmt.Sprintf("testimage: GIF %dx%d: %v", width, height, err))
	}
	return buf.Bytes()
}

// checkSize panics when width or height is outside 1..limit.
func checkSize(kind string, width, height, limit int) {
	if width < 1 || height < 1 || width > limit || height > limit {
		panic(fmt.Sprintf("testimage: %s: invalid size %dx%d (each side must be 1..%d)", kind, width, height, limit))
	}
}

// compose draws the shared test picture: red grows left to right, green top
// to bottom, blue along the diagonal, and every channel gets uniform noise in
// [-noiseAmp, noiseAmp] from a PCG generator seeded with seed.
func compose(width, height int, seed int64) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	rng := rand.New(rand.NewPCG(uint64(seed), 0x74657374696d67)) // "testimg"
	for y := range height {
		row := img.Pix[y*img.Stride : y*img.Stride+4*width]
		g := 255 * y / height
		for x := range width {
			r := 255 * x / width
			b := 255 * (x + y) / (width + height)
			n := rng.Uint64()
			p := row[4*x : 4*x+4 : 4*x+4]
			p[0] = clamp(r + noise(n))
			p[1] = clamp(g + noise(n>>8))
			p[2] = clamp(b + noise(n>>16))
			p[3] = 255
		}
	}
	return img
}

// noise maps the low byte of n onto [-noiseAmp, noiseAmp] without modulo bias
// worth speaking of.
func noise(n uint64) int {
	return int(uint8(n))*(2*noiseAmp+1)>>8 - noiseAmp
}

// clamp limits v to a byte.
func clamp(v int) uint8 {
	return uint8(min(max(v, 0), 255))
}
