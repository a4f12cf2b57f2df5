// Package detection is what the object detectors (vehicle, plate, face)
// share: the one result shape they reply with, non-maximum suppression, and
// decoding an uploaded image under a pixel limit.
package detection

import (
	"sort"
	"time"
)

// Result is the JSON reply of every detector:
//
//	{"detections":[{"label":"car","score":0.91,"box":{"x":10,"y":20,"w":200,"h":120}}],
//	 "model":{"name":"centernet-mobilenetv3","version":"human-models 3.0.4"},
//	 "inference_ms":61.2,"width":640,"height":480}
//
// Detections are sorted by score, highest first (an empty list, never
// null, when nothing is found); boxes are in pixels of the
// image as uploaded, with the origin at its top-left corner.
type Result struct {
	Detections  []Detection `json:"detections"`
	Model       Model       `json:"model"`
	InferenceMS float64     `json:"inference_ms"`
	Width       int         `json:"width"`
	Height      int         `json:"height"`
}

// Detection is one object found in the image.
type Detection struct {
	// Label is the object's class: "car", "motorcycle", "face", "plate", ...
	Label string `json:"label"`
	// Score is the detector's confidence in [0,1].
	Score float64 `json:"score"`
	Box   Box     `json:"box"`
	// Text is what was read inside the box (plates only).
	Text string `json:"text,omitempty"`
	// Name is who the face is, when face recognition is on and the face
	// matches a known one (faces only), with the cosine Similarity of
	// their embeddings, in [-1,1].
	Name       string  `json:"name,omitempty"`
	Similarity float64 `json:"similarity,omitempty"`
}

// Box is an axis-aligned rectangle in image pixels.
type Box struct {
	X float64 `json:"x"`
	Y float64 `json:"y"`
	W float64 `json:"w"`
	H float64 `json:"h"`
}

// Model names the model that produced a result.
type Model struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Milliseconds converts d to fractional milliseconds, rounded to 0.1 ms, for
// Result.InferenceMS.
func Milliseconds(d time.Duration) float64 {
	return float64(d.Round(100*time.Microsecond)) / float64(time.Millisecond)
}

// IoU returns the intersection over union of a and b, in [0,1].
func IoU(a, b Box) float64 {
	x0, y0 := max(a.X, b.X), max(a.Y, b.Y)
	x1, y1 := min(a.X+a.W, b.X+b.W), min(a.Y+a.H, b.Y+b.H)
	if x1 <= x0 || y1 <= y0 {
		return 0
	}
	inter := (x1 - x0) * (y1 - y0)
	union := a.W*a.H + b.W*b.H - inter
	if union <= 0 {
		return 0
	}
	return inter / union
}

// NMS sorts ds by score (highest first) and drops every detection that
// overlaps a better one by more than iou: one of the same label when
// perLabel is set, any otherwise. It reuses ds's backing array, and returns
// an empty slice rather than nil, so that a Result's "detections" encodes as
// [] when nothing is found.
func NMS(ds []Detection, iou float64, perLabel bool) []Detection {
	sort.SliceStable(ds, func(i, j int) bool { return ds[i].Score > ds[j].Score })
	out := ds[:0]
	if out == nil {
		out = []Detection{}
	}
	for _, d := range ds {
		keep := true
		for _, k := range out {
			if (!perLabel || k.Label == d.Label) && IoU(k.Box, d.Box) > iou {
				keep = false
				break
			}
		}
		if keep {
			out = append(out, d)
		}
	}
	return out
}

// Clip limits b to the w x h image.
func (b Box) Clip(w, h int) Box {
	x0, y0 := max(b.X, 0), max(b.Y, 0)
	x1, y1 := min(b.X+b.W, float64(w)), min(b.Y+b.H, float64(h))
	return Box{X: x0, Y: y0, W: max(x1-x0, 0), H: max(y1-y0, 0)}
}

// Round rounds the box's coordinates to 0.1 pixel, to keep replies short.
func (b Box) Round() Box {
	r := func(v float64) float64 { return float64(int64(v*10+0.5)) / 10 }
	return Box{X: r(b.X), Y: r(b.Y), W: r(b.W), H: r(b.H)}
}

// Median returns the median of ms (for reporting p50 inference times); 0 for
// none. It sorts ms.
func Median(ms []float64) float64 {
	if len(ms) == 0 {
		return 0
	}
	sort.Float64s(ms)
	return ms[len(ms)/2]
}
