// Package catalog builds analyzers by kind name from command-line flags, so
// the worker binary and the orchestrator's dev mode can offer every analyzer
// the project ships without knowing their packages.
//
// Kinds: simulate (for load tests); the real detectors named after their
// task: vehicle, plate, face; and two adapters for models of the user's own:
// http (forward to a model server) and exec (run a command). The real ones need the models that
// scripts/setup-models.sh installs; DefaultKind picks them for their task
// when the files are there, and simulate otherwise.
package catalog

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/visionmesh/vision/pkg/analyzer"
	"github.com/visionmesh/vision/pkg/analyzer/execcmd"
	"github.com/visionmesh/vision/pkg/analyzer/face"
	"github.com/visionmesh/vision/pkg/analyzer/httpfwd"
	"github.com/visionmesh/vision/pkg/analyzer/plate"
	"github.com/visionmesh/vision/pkg/analyzer/simulate"
	"github.com/visionmesh/vision/pkg/analyzer/vehicle"
	"github.com/visionmesh/vision/pkg/onnx"
)

// ErrUnknownKind is returned by New for a kind the catalog does not have.
var ErrUnknownKind = errors.New("unknown analyzer kind")

// DefaultModelsDir is where scripts/setup-models.sh puts the models, relative
// to the repository root; the environment variable ModelsDirEnv overrides it.
const (
	DefaultModelsDir = ".cache/models"
	ModelsDirEnv     = "VISION_MODELS_DIR"
)

// Options holds the settings of every analyzer kind; each kind reads its own.
type Options struct {
	Simulate simulate.Config
	// ModelsDir is the directory scripts/setup-models.sh filled.
	ModelsDir string
	// Threads is the number of threads one model inference may use; 0
	// means one per core.
	Threads int
	// MaxPixels is the largest image the real analyzers decode. It has no
	// flag of its own: the worker's -max-pixels sets it.
	MaxPixels int
	// KnownFaces is a folder of known faces; when set, the face kind also
	// recognises people (see face.Config.Known).
	KnownFaces string
	// FaceMatch is the similarity from which a face is a known person.
	FaceMatch float64
	// HTTPURL is the model server the http kind posts images to.
	HTTPURL string
	// Exec is the command line the exec kind runs (with /bin/sh -c).
	Exec string
	// AdapterTimeout bounds one request of the http kind or one run of the
	// exec kind.
	AdapterTimeout time.Duration
}

// RegisterFlags binds the analyzers' flags to fs, with their defaults; the
// environment (VISION_MODELS_DIR, ...) is read through getenv.
func (o *Options) RegisterFlags(fs *flag.FlagSet, getenv func(string) string) {
	fs.DurationVar(&o.Simulate.Work, "work", 200*time.Millisecond, "simulate: time each job takes")
	fs.DurationVar(&o.Simulate.Jitter, "jitter", 0, "simulate: extra random time in [0, jitter)")
	fs.Float64Var(&o.Simulate.FailRate, "fail-rate", 0, "simulate: probability in [0,1] that a job fails")
	fs.StringVar(&o.ModelsDir, "models-dir", modelsDir(getenv),
		"vehicle, plate, face: directory of the models that scripts/setup-models.sh installs (env "+ModelsDirEnv+")")
	fs.IntVar(&o.Threads, "model-threads", 0, "vehicle, plate, face: threads per inference (0: one per core)")
	fs.StringVar(&o.KnownFaces, "known-faces", getenv("VISION_KNOWN_FACES"),
		"face: folder of known faces (name.jpg or name/*.jpg) to recognise people by; empty: detection only (env VISION_KNOWN_FACES)")
	fs.Float64Var(&o.FaceMatch, "face-match", 0.6, "face: cosine similarity from which a face is a known person")
	fs.StringVar(&o.HTTPURL, "http-url", getenv("ANALYZER_HTTP_URL"),
		`http: model server URL; each image is POSTed as multipart field "media" (env ANALYZER_HTTP_URL)`)
	fs.StringVar(&o.Exec, "exec", getenv("ANALYZER_EXEC"),
		"exec: command line run with /bin/sh -c per image: image on stdin, JSON on stdout (env ANALYZER_EXEC)")
	fs.DurationVar(&o.AdapterTimeout, "adapter-timeout", 30*time.Second, "http, exec: time one request or run may take")
}

func modelsDir(getenv func(string) string) string {
	if d := getenv(ModelsDirEnv); d != "" {
		return d
	}
	return DefaultModelsDir
}

// kind is one analyzer kind: how to build it and the model files it needs.
type kind struct {
	build func(task string, o Options) (analyzer.Analyzer, error)
	files []string // relative to Options.ModelsDir
}

var kinds = map[string]kind{
	"simulate": {build: func(_ string, o Options) (analyzer.Analyzer, error) { return simulate.New(o.Simulate) }},
	"vehicle": {
		build: func(_ string, o Options) (analyzer.Analyzer, error) {
			return vehicle.New(vehicle.Config{Dir: o.ModelsDir, Threads: o.Threads, MaxPixels: o.MaxPixels})
		},
		files: []string{onnx.LibraryName, vehicle.ModelFile},
	},
	"face": {
		build: func(_ string, o Options) (analyzer.Analyzer, error) {
			return face.New(face.Config{Dir: o.ModelsDir, Threads: o.Threads, MaxPixels: o.MaxPixels,
				Known: o.KnownFaces, Match: o.FaceMatch})
		},
		files: []string{onnx.LibraryName, face.ModelFile},
	},
	"plate": {
		build: func(_ string, o Options) (analyzer.Analyzer, error) {
			return plate.New(plate.Config{Dir: o.ModelsDir, Threads: o.Threads, MaxPixels: o.MaxPixels})
		},
		files: plate.Files,
	},
	"http": {build: func(_ string, o Options) (analyzer.Analyzer, error) {
		return httpfwd.New(httpfwd.Config{URL: o.HTTPURL, Timeout: o.AdapterTimeout})
	}},
	"exec": {build: func(_ string, o Options) (analyzer.Analyzer, error) {
		if o.Exec == "" {
			return nil, errors.New("no -exec command")
		}
		return execcmd.New(execcmd.Config{Command: []string{"/bin/sh", "-c", o.Exec}, Timeout: o.AdapterTimeout})
	}},
}

// Kinds lists the analyzer kinds New accepts, sorted.
func Kinds() []string {
	out := make([]string, 0, len(kinds))
	for k := range kinds {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// New builds the analyzer of the given kind for task. A real analyzer whose
// models are missing fails with an error that names scripts/setup-models.sh.
func New(kind, task string, o Options) (analyzer.Analyzer, error) {
	k, ok := kinds[kind]
	if !ok {
		return nil, fmt.Errorf("%w %q (have %v)", ErrUnknownKind, kind, Kinds())
	}
	a, err := k.build(task, o)
	if err != nil {
		return nil, fmt.Errorf("analyzer %s for task %s: %w", kind, task, err)
	}
	return a, nil
}

// DefaultKind is the analyzer kind a task runs when none is given: the
// task's real analyzer when its model files are in o.ModelsDir, else
// simulate.
func (o Options) DefaultKind(task string) string {
	k, ok := kinds[task]
	if !ok || len(k.files) == 0 {
		return "simulate"
	}
	for _, f := range k.files {
		if _, err := os.Stat(filepath.Join(o.ModelsDir, f)); err != nil {
			return "simulate"
		}
	}
	return task
}
