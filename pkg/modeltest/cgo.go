//go:build cgo

package modeltest

const cgo = true
