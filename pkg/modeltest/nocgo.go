//go:build !cgo

package modeltest

// cgo is false in a build without cgo, where ONNX Runtime cannot load.
const cgo = false
