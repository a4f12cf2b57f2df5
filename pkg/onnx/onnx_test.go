package onnx_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/visionmesh/vision/pkg/modeltest"
	"github.com/visionmesh/vision/pkg/onnx"
)

// The CenterNet model that scripts/setup-models.sh converts.
const (
	model     = "centernet.onnx"
	inputName = "tower_0/images"
)

var outputs = []string{"heatmap", "boxes"}

func load(tb testing.TB) *onnx.Session {
	tb.Helper()
	dir := modeltest.Dir(tb, onnx.LibraryName, model)
	s, err := onnx.Load(onnx.Config{Library: filepath.Join(dir, onnx.LibraryName)},
		filepath.Join(dir, model), []string{inputName}, outputs)
	if err != nil {
		tb.Fatalf("Load: %v", err)
	}
	return s
}

func input(v float32) onnx.Tensor {
	data := make([]float32, 512*512*3)
	for i := range data {
		data[i] = float32(i%251) * v
	}
	return onnx.Tensor{Shape: []int64{1, 512, 512, 3}, Data: data}
}

func TestRunShapes(t *testing.T) {
	s := load(t)
	out, err := s.Run(context.Background(), input(1))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := [][]int64{{1, 80, 128, 128}, {1, 4, 128, 128}}
	for i, o := range out {
		if len(o.Shape) != 4 || o.Shape[1] != want[i][1] || o.Shape[2] != 128 || o.Shape[3] != 128 {
			t.Errorf("output %s: got shape %v, want %v", outputs[i], o.Shape, want[i])
		}
		if int64(len(o.Data)) != want[i][1]*128*128 {
			t.Errorf("output %s: got %d values, want %d", outputs[i], len(o.Data), want[i][1]*128*128)
		}
	}
}

func TestLoadReusesSession(t *testing.T) {
	a, b := load(t), load(t)
	if a != b {
		t.Errorf("got two sessions for one model, want one")
	}
}

// TestConcurrentRun runs one session from several goroutines (run it with
// -race): each must get the result a lone run gets.
func TestConcurrentRun(t *testing.T) {
	s := load(t)
	inputs := []onnx.Tensor{input(0.5), input(1)}
	want := make([][]onnx.Tensor, len(inputs))
	for i, in := range inputs {
		out, err := s.Run(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = out
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			i := g % len(inputs)
			out, err := s.Run(context.Background(), inputs[i])
			if err != nil {
				t.Errorf("Run: %v", err)
				return
			}
			for k := range out {
				for j, v := range out[k].Data {
					if d := v - want[i][k].Data[j]; d > 1e-4 || d < -1e-4 {
						t.Errorf("goroutine %d output %d[%d]: got %v, want %v", g, k, j, v, want[i][k].Data[j])
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

func TestRunCancelled(t *testing.T) {
	s := load(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	time.Sleep(2 * time.Millisecond) // let the deadline pass before Run
	if _, err := s.Run(ctx, input(1)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want context.DeadlineExceeded", err)
	}
}

func TestMissing(t *testing.T) {
	dir := t.TempDir()
	_, err := onnx.Load(onnx.Config{Library: filepath.Join(dir, onnx.LibraryName)},
		filepath.Join(dir, model), []string{inputName}, outputs)
	if !errors.Is(err, onnx.ErrMissing) {
		t.Fatalf("got %v, want ErrMissing", err)
	}
}

func BenchmarkRun(b *testing.B) {
	s := load(b)
	in := input(1)
	for b.Loop() {
		if _, err := s.Run(context.Background(), in); err != nil {
			b.Fatal(err)
		}
	}
}
