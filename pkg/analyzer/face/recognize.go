package face

import (
	"context"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/visionmesh/vision/pkg/detection"
	"github.com/visionmesh/vision/pkg/onnx"
)

// EmbedFile is the face description model's file name in the models
// directory, needed when Config.Known is set: FaceRes from human-models,
// whose global-pooling layer gives a 1024-value descriptor of a face.
const EmbedFile = "faceres.onnx"

const (
	embedSize = 224 // the description model's square input, in pixels
	// embedCrop is the side of the square cropped around a face, relative
	// to BlazeFace's box: a little hair and chin around the face separates
	// people best on the test photos.
	embedCrop = 1.3
)

// person is one known face: a name and a descriptor.
type person struct {
	name string
	emb  []float32
}

// loadKnown loads the embedding model and embeds the largest face of every
// image in cfg.Known.
func (d *Detector) loadKnown() error {
	s, err := onnx.Load(onnx.Config{Library: filepath.Join(d.cfg.Dir, onnx.LibraryName), Threads: d.cfg.Threads},
		filepath.Join(d.cfg.Dir, EmbedFile), []string{"input_1"}, []string{"descriptor"})
	if err != nil {
		return err
	}
	d.embed = s
	files, err := knownFiles(d.cfg.Known)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("known faces: no images in %s", d.cfg.Known)
	}
	ctx := context.Background()
	for _, f := range files {
		data, err := os.ReadFile(f.path)
		if err != nil {
			return fmt.Errorf("known faces: %w", err)
		}
		img, err := detection.Decode(data, d.cfg.MaxPixels)
		if err != nil {
			return fmt.Errorf("known face %s: %w", f.path, err)
		}
		faces, err := d.detect(ctx, img)
		if err != nil {
			return fmt.Errorf("known face %s: %w", f.path, err)
		}
		if len(faces) == 0 {
			return fmt.Errorf("known face %s: no face found", f.path)
		}
		largest := faces[0]
		for _, c := range faces[1:] {
			if c.Box.W*c.Box.H > largest.Box.W*largest.Box.H {
				largest = c
			}
		}
		e, err := d.embedding(ctx, img, largest)
		if err != nil {
			return fmt.Errorf("known face %s: %w", f.path, err)
		}
		d.known = append(d.known, person{name: f.name, emb: e})
	}
	return nil
}

type knownFile struct{ name, path string }

// knownFiles lists the images of dir: <name>.<ext>, or <name>/<any>.<ext>.
func knownFiles(dir string) ([]knownFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("known faces: %w", err)
	}
	var out []knownFile
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if e.IsDir() {
			sub, err := os.ReadDir(p)
			if err != nil {
				return nil, fmt.Errorf("known faces: %w", err)
			}
			for _, s := range sub {
				if !s.IsDir() && isImage(s.Name()) {
					out = append(out, knownFile{name: e.Name(), path: filepath.Join(p, s.Name())})
				}
			}
			continue
		}
		if isImage(e.Name()) {
			out = append(out, knownFile{name: strings.TrimSuffix(e.Name(), filepath.Ext(e.Name())), path: p})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out, nil
}

func isImage(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".jpg", ".jpeg", ".png", ".gif":
		return true
	}
	return false
}

// embedding crops a square around the face, turned so that its eyes are
// level, samples it at 224x224 (RGB 0-255) and returns its descriptor.
func (d *Detector) embedding(ctx context.Context, img *image.RGBA, f found) ([]float32, error) {
	angle := math.Atan2(f.leftEye[1]-f.rightEye[1], f.leftEye[0]-f.rightEye[0])
	side := max(f.Box.W, f.Box.H) * embedCrop
	cx, cy := f.Box.X+f.Box.W/2, f.Box.Y+f.Box.H/2
	x := detection.Rotated(img, cx, cy, side, angle, embedSize, embedSize, detection.NHWC,
		[3]float32{}, [3]float32{1, 1, 1})
	out, err := d.embed.Run(ctx, onnx.Tensor{Shape: []int64{1, embedSize, embedSize, 3}, Data: x})
	if err != nil {
		return nil, err
	}
	return out[0].Data, nil
}

// match returns the known person most similar to e and the cosine
// similarity, or "" and 0 when none reaches cfg.Match.
func (d *Detector) match(e []float32) (string, float64) {
	best, name := -1.0, ""
	for _, p := range d.known {
		if s := cosine(e, p.emb); s > best {
			best, name = s, p.name
		}
	}
	if best < d.cfg.Match {
		return "", 0
	}
	return name, math.Round(best*1000) / 1000
}

func cosine(a, b []float32) float64 {
	var dot, na, nb float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	if na == 0 || nb == 0 {
		return 0
	}
	return dot / math.Sqrt(na*nb)
}

func (d *Detector) loadKnownModelOnly() error {
	s, err := onnx.Load(onnx.Config{Library: filepath.Join(d.cfg.Dir, onnx.LibraryName)}, filepath.Join(d.cfg.Dir, EmbedFile), []string{"img_inputs"}, []string{"embeddings"})
	d.embed = s
	return err
}
