package catalog_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/visionmesh/vision/pkg/catalog"
	"github.com/visionmesh/vision/pkg/onnx"
)

func TestDefaultKind(t *testing.T) {
	empty := catalog.Options{ModelsDir: t.TempDir()}
	full := catalog.Options{ModelsDir: t.TempDir()}
	for _, f := range []string{onnx.LibraryName, "centernet.onnx", "blazeface.onnx",
		"ppocr/ch_PP-OCRv4_det_infer.onnx", "ppocr/ch_PP-OCRv4_rec_infer.onnx", "ppocr/ppocr_keys_v1.txt"} {
		p := filepath.Join(full.ModelsDir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		o    catalog.Options
		task string
		want string
	}{
		{"no models", empty, "vehicle", "simulate"},
		{"models", full, "vehicle", "vehicle"},
		{"face", full, "face", "face"},
		{"plate", full, "plate", "plate"},
		{"unknown task", full, "colour", "simulate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.o.DefaultKind(tc.task); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNewMissingModels(t *testing.T) {
	for _, kind := range []string{"vehicle", "plate", "face"} {
		t.Run(kind, func(t *testing.T) {
			_, err := catalog.New(kind, kind, catalog.Options{ModelsDir: t.TempDir()})
			if !errors.Is(err, onnx.ErrMissing) || !strings.Contains(err.Error(), "scripts/setup-models.sh") {
				t.Errorf("got %v, want ErrMissing naming scripts/setup-models.sh", err)
			}
		})
	}
}

func TestNewAdapters(t *testing.T) {
	tests := []struct {
		kind    string
		o       catalog.Options
		wantErr bool
	}{
		{"http", catalog.Options{HTTPURL: "http://127.0.0.1:9/analyze"}, false},
		{"http", catalog.Options{}, true},
		{"exec", catalog.Options{Exec: "cat >/dev/null; echo {}"}, false},
		{"exec", catalog.Options{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.kind, func(t *testing.T) {
			_, err := catalog.New(tc.kind, "face", tc.o)
			if (err != nil) != tc.wantErr {
				t.Errorf("got error %v, want error: %v", err, tc.wantErr)
			}
		})
	}
}

func TestNewUnknown(t *testing.T) {
	if _, err := catalog.New("nope", "vehicle", catalog.Options{}); !errors.Is(err, catalog.ErrUnknownKind) {
		t.Errorf("got %v, want ErrUnknownKind", err)
	}
}

func TestModelsDirFlag(t *testing.T) {
	tests := []struct {
		name string
		env  string
		args []string
		want string
	}{
		{"default", "", nil, catalog.DefaultModelsDir},
		{"env", "/m", nil, "/m"},
		{"flag beats env", "/m", []string{"-models-dir", "/f"}, "/f"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var o catalog.Options
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			o.RegisterFlags(fs, func(k string) string {
				if k == catalog.ModelsDirEnv {
					return tc.env
				}
				return ""
			})
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if o.ModelsDir != tc.want {
				t.Errorf("got %q, want %q", o.ModelsDir, tc.want)
			}
		})
	}
}
