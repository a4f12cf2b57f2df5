// Package modeltest finds the models directory for tests of the real
// analyzers, and skips the test when what it needs is not installed, so that
// `go test ./...` passes on a machine where scripts/setup-models.sh has not
// run.
package modeltest

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/visionmesh/vision/pkg/analyzer"
	"github.com/visionmesh/vision/pkg/detection"
	"github.com/visionmesh/vision/pkg/testimage"
)

// SetupCommand installs the runtime and the models (see onnx.SetupCommand).
const SetupCommand = "bash scripts/setup-models.sh"

// Dir returns the models directory: $VISION_MODELS_DIR, else .cache/models
// under the module root. It skips the test, naming SetupCommand, when one of
// files (relative to the directory) is missing, and when the test binary was
// built without cgo and files are asked for.
func Dir(tb testing.TB, files ...string) string {
	tb.Helper()
	if !cgo && len(files) > 0 {
		tb.Skip("built without cgo: ONNX Runtime cannot load")
	}
	dir := os.Getenv("VISION_MODELS_DIR")
	if dir == "" {
		root, err := testimage.ModuleRoot()
		if err != nil {
			tb.Fatalf("modeltest: %v", err)
		}
		dir = filepath.Join(root, ".cache", "models")
	}
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			tb.Skipf("%s is missing in %s; install the models with: %s", f, dir, SetupCommand)
		}
	}
	return dir
}

// Analyze runs a on data as a job of task and returns its detection result,
// failing the test on an error.
func Analyze(tb testing.TB, a analyzer.Analyzer, task string, data []byte) *detection.Result {
	tb.Helper()
	res, err := a.Analyze(context.Background(), analyzer.Input{Task: task, Data: data})
	if err != nil {
		tb.Fatalf("Analyze: %v", err)
	}
	return res.(*detection.Result)
}
