//go:build !cgo

package onnx

import (
	"context"
	"fmt"
)

// Session runs one model; without cgo it cannot be created.
type Session struct{}

// Load checks that the library and the model are installed, then fails with
// ErrNoCgo: this binary was built without cgo.
func Load(cfg Config, path string, inputs, outputs []string) (*Session, error) {
	for _, f := range []string{cfg.Library, path} {
		if err := Missing(f); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("load %s: %w", path, ErrNoCgo)
}

// Run always fails with ErrNoCgo.
func (s *Session) Run(ctx context.Context, inputs ...Tensor) ([]Tensor, error) {
	return nil, ErrNoCgo
}
