package testimage

import (
	"bytes"
	"math"
	"sync"
)

// sizeQuality is the JPEG quality JPEGOfSize encodes at.
const sizeQuality = 95

// sizeKey identifies one JPEGOfSize result in sizeCache.
type sizeKey struct {
	target int
	seed   int64
}

// sizeCache holds JPEGOfSize results: benchmarks ask for the same few
// multi-megabyte images again and again.
var sizeCache sync.Map // sizeKey -> []byte

// JPEGOfSize returns a 4:3 JPEG (gradient plus noise drawn from seed) whose
// encoded size is close to target bytes: normally within 5%, and always
// within 25% for targets from a few kilobytes up to tens of megabytes.
// Targets below the size of the smallest such JPEG (an 8x8 one, under a
// kilobyte) give that smallest one.
//
// It finds the dimensions by encoding a few candidates, so the first call
// for a (target, seed) pair costs a few encodes (well under a second for
// 2 MB); results are cached, and each call returns its own copy.
func JPEGOfSize(target int, seed int64) []byte {
	key := sizeKey{target, seed}
	if b, ok := sizeCache.Load(key); ok {
		return bytes.Clone(b.([]byte))
	}
	b, _ := sizeCache.LoadOrStore(key, searchJPEG(target, seed))
	return bytes.Clone(b.([]byte))
}

// searchJPEG models the encoded size as header + perPixel*pixels, which the
// noise makes nearly exact, and refines perPixel from each encode until the
// size is within 5% of target.
func searchJPEG(target int, seed int64) []byte {
	smallest := JPEG(8, 8, sizeQuality, seed)
	header := float64(len(smallest)) // 64 noisy pixels add little to it
	if target <= len(smallest) {
		return smallest
	}
	best := smallest
	perPixel := 0.74 // measured at sizeQuality with noiseAmp; the loop corrects it
	for range 6 {
		w, h := dimensions((float64(target) - header) / perPixel)
		b := JPEG(w, h, sizeQuality, seed)
		if diff(len(b), target) < diff(len(best), target) {
			best = b
		}
		if diff(len(b), target) <= float64(target)/20 {
			break
		}
		if data := float64(len(b)) - header; data > 0 {
			perPixel = data / float64(w*h)
		}
	}
	return best
}

// dimensions returns a 4:3 width and height with about pixels pixels, each
// side within what a JPEG can hold.
func dimensions(pixels float64) (width, height int) {
	w := math.Round(math.Sqrt(pixels * 4 / 3))
	w = min(max(w, 8), 65535)
	h := math.Round(pixels / w)
	h = min(max(h, 8), 65535)
	return int(w), int(h)
}

// diff returns |a-b| as a float64.
func diff(a, b int) float64 {
	return math.Abs(float64(a - b))
}
