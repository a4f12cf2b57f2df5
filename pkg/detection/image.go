package detection

import (
	"bytes"
	"image"
	"image/draw"
	_ "image/gif" // the formats the orchestrator accepts
	_ "image/jpeg"
	_ "image/png"
	"math"

	"github.com/visionmesh/vision/pkg/analyzer"
)

// DefaultMaxPixels is the pixel limit Decode applies when given 0: about a
// 40-megapixel photo, which decodes to 160 MB of RGBA.
const DefaultMaxPixels = 40_000_000

// Decode decodes a JPEG, PNG or GIF image into RGBA. It reads the header
// first and refuses an image of more than maxPixels pixels (0 means
// DefaultMaxPixels) before decoding anything. Errors wrap
// analyzer.ErrBadImage.
func Decode(data []byte, maxPixels int) (*image.RGBA, error) {
	if maxPixels <= 0 {
		maxPixels = DefaultMaxPixels
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, analyzer.BadImagef("read header: %v", err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width > maxPixels/cfg.Height {
		return nil, analyzer.BadImagef("%s is %dx%d, more than %d pixels", format, cfg.Width, cfg.Height, maxPixels)
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, analyzer.BadImagef("decode %s: %v", format, err)
	}
	if rgba, ok := img.(*image.RGBA); ok && rgba.Rect.Min == (image.Point{}) {
		return rgba, nil
	}
	b := img.Bounds()
	rgba := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(rgba, rgba.Rect, img, b.Min, draw.Src)
	return rgba, nil
}

// Layout is the memory order of a tensor that Tensor fills.
type Layout int

// The layouts of an image tensor with batch size 1.
const (
	NHWC Layout = iota // [1, H, W, 3]
	NCHW               // [1, 3, H, W]
)

// Tensor resamples the rectangle r of img to w x h pixels (bilinear,
// stretched) and returns them as float32 RGB in the given layout, each
// channel value v (0-255) mapped to (v - mean[c]) * scale[c]. Where r reaches
// beyond the image the pixels are black, so a square r around a
// non-square image letterboxes it.
func Tensor(img *image.RGBA, r image.Rectangle, w, h int, layout Layout, mean, scale [3]float32) []float32 {
	out := make([]float32, w*h*3)
	sx := float64(r.Dx()) / float64(w)
	sy := float64(r.Dy()) / float64(h)
	plane := w * h
	// When shrinking by more than 2, average a small grid of samples per
	// output pixel so that thin lines and text are not lost to aliasing.
	nx, ny := max(1, int(sx/2)), max(1, int(sy/2))
	inv := 1 / float32(nx*ny)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			var acc [3]float32
			for j := 0; j < ny; j++ {
				fy := float64(r.Min.Y) + (float64(y)+(float64(j)+0.5)/float64(ny))*sy - 0.5
				for i := 0; i < nx; i++ {
					fx := float64(r.Min.X) + (float64(x)+(float64(i)+0.5)/float64(nx))*sx - 0.5
					p := bilinear(img, fx, fy)
					acc[0] += p[0]
					acc[1] += p[1]
					acc[2] += p[2]
				}
			}
			for c := 0; c < 3; c++ {
				v := (acc[c]*inv - mean[c]) * scale[c]
				if layout == NHWC {
					out[(y*w+x)*3+c] = v
				} else {
					out[c*plane+y*w+x] = v
				}
			}
		}
	}
	return out
}

// Rotated samples a side x side square of img centred on (cx, cy) and turned
// by angle radians (clockwise on screen, the way an upright face tilted by
// angle looks) into w x h pixels, as Tensor does for an axis-aligned
// rectangle: the result shows the square's content upright.
func Rotated(img *image.RGBA, cx, cy, side, angle float64, w, h int, layout Layout, mean, scale [3]float32) []float32 {
	out := make([]float32, w*h*3)
	cos, sin := math.Cos(angle), math.Sin(angle)
	plane := w * h
	for y := 0; y < h; y++ {
		v := ((float64(y)+0.5)/float64(h) - 0.5) * side
		for x := 0; x < w; x++ {
			u := ((float64(x)+0.5)/float64(w) - 0.5) * side
			p := bilinear(img, cx+u*cos-v*sin-0.5, cy+u*sin+v*cos-0.5)
			for c := 0; c < 3; c++ {
				val := (p[c] - mean[c]) * scale[c]
				if layout == NHWC {
					out[(y*w+x)*3+c] = val
				} else {
					out[c*plane+y*w+x] = val
				}
			}
		}
	}
	return out
}

// bilinear samples img at (fx, fy), clamping to the image's edges; black
// outside the image.
func bilinear(img *image.RGBA, fx, fy float64) [3]float32 {
	b := img.Rect
	if fx < float64(b.Min.X)-0.5 || fy < float64(b.Min.Y)-0.5 || fx > float64(b.Max.X)-0.5 || fy > float64(b.Max.Y)-0.5 {
		return [3]float32{}
	}
	clampX := func(v int) int { return min(max(v, b.Min.X), b.Max.X-1) }
	clampY := func(v int) int { return min(max(v, b.Min.Y), b.Max.Y-1) }
	x0f, y0f := floor(fx), floor(fy)
	ax, ay := float32(fx-x0f), float32(fy-y0f)
	x0, y0 := clampX(int(x0f)), clampY(int(y0f))
	x1, y1 := clampX(int(x0f)+1), clampY(int(y0f)+1)
	p00 := img.PixOffset(x0, y0)
	p10 := img.PixOffset(x1, y0)
	p01 := img.PixOffset(x0, y1)
	p11 := img.PixOffset(x1, y1)
	var v [3]float32
	for c := 0; c < 3; c++ {
		top := float32(img.Pix[p00+c])*(1-ax) + float32(img.Pix[p10+c])*ax
		bot := float32(img.Pix[p01+c])*(1-ax) + float32(img.Pix[p11+c])*ax
		v[c] = top*(1-ay) + bot*ay
	}
	return v
}

func floor(v float64) float64 {
	i := float64(int64(v))
	if i > v {
		i--
	}
	return i
}
