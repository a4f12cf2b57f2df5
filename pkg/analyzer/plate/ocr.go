package plate

import (
	"context"
	"image"
	"math"
	"sort"

	"github.com/visionmesh/vision/pkg/detection"
	"github.com/visionmesh/vision/pkg/onnx"
)

// PaddleOCR's post-processing settings for the text detector.
const (
	binThreshold = 0.3 // probability above which a pixel is text
	boxThreshold = 0.6 // mean probability a text region needs
	unclipRatio  = 1.5 // how far a region grows back to cover its glyphs
	minSide      = 3   // smallest region side kept, in detector pixels
	maxLines     = 30  // text lines read at most, largest first
	recHeight    = 48  // the recogniser's input height
	recMaxWidth  = 960 // widest recogniser input
)

// line is a text line the detector found.
type line struct {
	box   detection.Box // in image pixels
	score float64
}

// The detector's normalisation: ImageNet mean and deviation, in the BGR order
// PaddleOCR feeds (given here per R, G, B channel).
var (
	detMean  = [3]float32{0.406 * 255, 0.456 * 255, 0.485 * 255}
	detScale = [3]float32{1 / (0.225 * 255), 1 / (0.224 * 255), 1 / (0.229 * 255)}
)

// detect runs the text detector on img scaled so that its longer side is at
// most MaxSide, both sides multiples of 32, and returns the text lines.
func (r *Reader) detect(ctx context.Context, img *image.RGBA) ([]line, error) {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	s := min(1, float64(r.cfg.MaxSide)/float64(max(w, h)))
	dw := max(32, int(math.Round(float64(w)*s/32))*32)
	dh := max(32, int(math.Round(float64(h)*s/32))*32)
	x := detection.Tensor(img, img.Rect, dw, dh, detection.NCHW, detMean, detScale)
	swapRB(x, dw*dh)
	out, err := r.det.Run(ctx, onnx.Tensor{Shape: []int64{1, 3, int64(dh), int64(dw)}, Data: x})
	if err != nil {
		return nil, err
	}
	lines := regions(out[0].Data, dw, dh, float64(w)/float64(dw), float64(h)/float64(dh))
	sort.Slice(lines, func(i, j int) bool { return lines[i].box.W*lines[i].box.H > lines[j].box.W*lines[j].box.H })
	if len(lines) > maxLines {
		lines = lines[:maxLines]
	}
	return lines, nil
}

// regions finds the connected regions of the probability map prob (w x h)
// above binThreshold whose mean probability reaches boxThreshold, grows
// each bounding box by PaddleOCR's unclip distance (area * ratio /
// perimeter) and scales it by (sx, sy) to image pixels.
func regions(prob []float32, w, h int, sx, sy float64) []line {
	seen := make([]bool, len(prob))
	var out []line
	stack := make([]int, 0, 256)
	for start, p := range prob {
		if seen[start] || p <= binThreshold {
			continue
		}
		seen[start] = true
		stack = append(stack[:0], start)
		x0, y0, x1, y1 := w, h, -1, -1
		var sum float64
		n := 0
		for len(stack) > 0 {
			i := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			x, y := i%w, i/w
			x0, y0, x1, y1 = min(x0, x), min(y0, y), max(x1, x), max(y1, y)
			sum += float64(prob[i])
			n++
			for _, d := range [4][2]int{{1, 0}, {-1, 0}, {0, 1}, {0, -1}} {
				xx, yy := x+d[0], y+d[1]
				if xx < 0 || yy < 0 || xx >= w || yy >= h {
					continue
				}
				j := yy*w + xx
				if !seen[j] && prob[j] > binThreshold {
					seen[j] = true
					stack = append(stack, j)
				}
			}
		}
		bw, bh := float64(x1-x0+1), float64(y1-y0+1)
		score := sum / float64(n)
		if bw < minSide || bh < minSide || score < boxThreshold {
			continue
		}
		d := bw * bh * unclipRatio / (2 * (bw + bh))
		out = append(out, line{
			box: detection.Box{
				X: (float64(x0) - d) * sx, Y: (float64(y0) - d) * sy,
				W: (bw + 2*d) * sx, H: (bh + 2*d) * sy,
			},
			score: score,
		})
	}
	return out
}

// recognize reads the text in box: the crop is scaled to 48 pixels high,
// keeping its proportions, and the recogniser's output is CTC-decoded
// greedily. conf is the mean probability of the characters read.
func (r *Reader) recognize(ctx context.Context, img *image.RGBA, box detection.Box) (text string, conf float64, err error) {
	rect := image.Rect(int(box.X), int(box.Y), int(math.Ceil(box.X+box.W)), int(math.Ceil(box.Y+box.H))).Intersect(img.Rect)
	if rect.Dx() < 2 || rect.Dy() < 2 {
		return "", 0, nil
	}
	rw := min(recMaxWidth, max(recHeight/4, int(math.Ceil(recHeight*float64(rect.Dx())/float64(rect.Dy())))))
	half := [3]float32{127.5, 127.5, 127.5}
	x := detection.Tensor(img, rect, rw, recHeight, detection.NCHW, half, [3]float32{1 / 127.5, 1 / 127.5, 1 / 127.5})
	swapRB(x, rw*recHeight)
	out, err := r.rec.Run(ctx, onnx.Tensor{Shape: []int64{1, 3, recHeight, int64(rw)}, Data: x})
	if err != nil {
		return "", 0, err
	}
	probs, shape := out[0].Data, out[0].Shape
	steps, classes := int(shape[1]), int(shape[2])
	var chars []rune
	var sum float64
	prev := -1
	for t := 0; t < steps; t++ {
		row := probs[t*classes : (t+1)*classes]
		best := 0
		for c, p := range row {
			if p > row[best] {
				best = c
			}
		}
		if best != 0 && best != prev && best < len(r.keys) {
			chars = append(chars, []rune(r.keys[best])...)
			sum += float64(row[best])
		}
		prev = best
	}
	if len(chars) == 0 {
		return "", 0, nil
	}
	return string(chars), sum / float64(len(chars)), nil
}

// swapRB swaps the first and third planes of a [3, plane] tensor, turning
// RGB into BGR.
func swapRB(x []float32, plane int) {
	r, b := x[:plane], x[2*plane:3*plane]
	for i := range r {
		r[i], b[i] = b[i], r[i]
	}
}
