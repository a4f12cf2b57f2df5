//go:build cgo

package onnx

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

var (
	envMu   sync.Mutex
	envPath string // library the environment was initialised from
	cache   = map[string]*Session{}
)

func initEnv(lib string) error {
	if envPath != "" {
		if envPath != lib {
			return fmt.Errorf("%w: %s, not %s", ErrLibraryChanged, envPath, lib)
		}
		return nil
	}
	ort.SetSharedLibraryPath(lib)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return fmt.Errorf("load onnx runtime %s: %w", lib, err)
	}
	envPath = lib
	return nil
}

// Session runs one model. Create it with Load.
type Session struct {
	model   string
	inputs  []string
	outputs []string
	s       *ort.DynamicAdvancedSession
}

// Load returns the session for the model at path with the given input and
// output names, creating it on first use and reusing it afterwards. It
// returns an error wrapping ErrMissing when the library or the model file
// is not installed.
func Load(cfg Config, path string, inputs, outputs []string) (*Session, error) {
	for _, f := range []string{cfg.Library, path} {
		if err := Missing(f); err != nil {
			return nil, err
		}
	}
	envMu.Lock()
	defer envMu.Unlock()
	if err := initEnv(cfg.Library); err != nil {
		return nil, err
	}
	key := fmt.Sprintf("%s|%s|%s|%d", path, strings.Join(inputs, ","), strings.Join(outputs, ","), cfg.Threads)
	if s, ok := cache[key]; ok {
		return s, nil
	}
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("session options: %w", err)
	}
	defer opts.Destroy()
	if cfg.Threads > 0 {
		if err := opts.SetIntraOpNumThreads(cfg.Threads); err != nil {
			return nil, fmt.Errorf("session threads: %w", err)
		}
	}
	ds, err := ort.NewDynamicAdvancedSession(path, inputs, outputs, opts)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", filepath.Base(path), err)
	}
	s := &Session{model: filepath.Base(path), inputs: inputs, outputs: outputs, s: ds}
	cache[key] = s
	return s, nil
}

// Run runs the model on inputs (in the order of the input names given to
// Load) and returns its outputs (in the order of the output names). When ctx
// ends during the run, ONNX Runtime is told to stop and Run returns
// ctx.Err().
func (s *Session) Run(ctx context.Context, inputs ...Tensor) ([]Tensor, error) {
	if len(inputs) != len(s.inputs) {
		return nil, fmt.Errorf("%s: got %d inputs, want %d", s.model, len(inputs), len(s.inputs))
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	in := make([]ort.Value, len(inputs))
	for i, t := range inputs {
		v, err := ort.NewTensor(ort.NewShape(t.Shape...), t.Data)
		if err != nil {
			destroy(in)
			return nil, fmt.Errorf("%s: input %s: %w", s.model, s.inputs[i], err)
		}
		in[i] = v
	}
	defer destroy(in)

	ro, err := ort.NewRunOptions()
	if err != nil {
		return nil, fmt.Errorf("run options: %w", err)
	}
	defer ro.Destroy()
	stop := context.AfterFunc(ctx, func() { _ = ro.Terminate() })
	defer stop()

	out := make([]ort.Value, len(s.outputs))
	err = s.s.RunWithOptions(in, out, ro)
	defer destroy(out)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("run %s: %w", s.model, err)
	}
	res := make([]Tensor, len(out))
	for i, v := range out {
		t, ok := v.(*ort.Tensor[float32])
		if !ok {
			return nil, fmt.Errorf("%s: output %s is %T, want float32 tensor", s.model, s.outputs[i], v)
		}
		res[i] = Tensor{Shape: append([]int64(nil), t.GetShape()...), Data: append([]float32(nil), t.GetData()...)}
	}
	return res, nil
}

func destroy(vs []ort.Value) {
	for _, v := range vs {
		if v != nil {
			_ = v.Destroy()
		}
	}
}
