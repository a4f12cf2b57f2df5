// Package onnx runs ONNX models on ONNX Runtime, loaded at run time from a
// shared library (libonnxruntime.so.1, fetched by scripts/setup-models.sh).
//
// ONNX Runtime keeps one environment per process, so the library is loaded
// once; sessions are cached by model file so that every analyzer using the
// same model in one process shares one session. A Session is safe for
// concurrent use: ONNX Runtime's Run may be called from many threads on one
// session, and the binding's DynamicAdvancedSession keeps no per-run state
// (every Run passes its own input and output values).
//
// The binding needs cgo; a binary built with CGO_ENABLED=0 still builds, and
// Load then fails with ErrNoCgo.
package onnx

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// SetupCommand is the command that installs the runtime and the models.
const SetupCommand = "scripts/setup-models.sh"

// LibraryName is the file name of the ONNX Runtime library in a models dir.
const LibraryName = "libonnxruntime.so.1"

// Errors returned by Load and Session.Run.
var (
	// ErrMissing means a model or the runtime library is not installed.
	ErrMissing = errors.New("not installed")
	// ErrLibraryChanged means the process already loaded ONNX Runtime from
	// another path; one process can only use one.
	ErrLibraryChanged = errors.New("onnx runtime already loaded from another path")
	// ErrNoCgo means the binary was built with CGO_ENABLED=0, which leaves
	// out the ONNX Runtime binding.
	ErrNoCgo = errors.New("onnx runtime needs a build with cgo")
)

// Config locates the runtime library and tunes sessions.
type Config struct {
	// Library is the path of libonnxruntime.so.1.
	Library string
	// Threads is the number of threads one Run may use (ONNX Runtime's
	// intra-op threads); 0 leaves ONNX Runtime's default (one per core).
	Threads int
}

// Missing returns an error wrapping ErrMissing for a file that is not there,
// naming the command that installs it; nil when the file exists.
func Missing(path string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("%s %w (run %s): %v", filepath.Base(path), ErrMissing, SetupCommand, err)
	}
	return nil
}

// Tensor is a float32 tensor in row-major order.
type Tensor struct {
	Shape []int64
	Data  []float32
}
