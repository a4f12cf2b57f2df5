// Package imageinfo tells what an uploaded image is (JPEG, PNG or GIF), how
// large it is, and whether it is whole, without decoding a single pixel: it
// reads the header with the standard library's DecodeConfig and walks the
// file's structure to catch truncation. It runs on every upload, so it
// refuses decompression bombs from the header alone and allocates little
// beyond what DecodeConfig needs.
package imageinfo

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
)

// Errors Inspect returns, wrapped with detail; compare them with errors.Is.
var (
	// ErrEmpty means the data has no bytes at all.
	ErrEmpty = errors.New("empty image")
	// ErrUnknownFormat means the data does not start with the magic bytes of
	// JPEG, PNG or GIF.
	ErrUnknownFormat = errors.New("unknown image format")
	// ErrCorrupt means the header does not decode with the standard library
	// (image/jpeg, image/png or image/gif DecodeConfig), or the file's
	// structure is broken in a way that is not mere truncation. The
	// decoder's own error is wrapped too.
	ErrCorrupt = errors.New("corrupt image")
	// ErrTruncated means the file is cut short: the header itself, or the
	// data after a sound header (no PNG IEND chunk, no JPEG end-of-image
	// marker after the scan, no GIF trailer).
	ErrTruncated = errors.New("truncated image")
	// ErrTooManyPixels means width*height exceeds the caller's limit, or a
	// side is not positive. It is decided from the header, before anything
	// else is read, so a decompression bomb costs nothing.
	ErrTooManyPixels = errors.New("too many pixels")
)

// Info describes an image as its header declares it.
type Info struct {
	// Format is "jpeg", "png" or "gif" (the names image.Decode uses).
	Format string
	// ContentType is the media type: "image/jpeg", "image/png" or
	// "image/gif".
	ContentType string
	// Width and Height are in pixels, both at least 1.
	Width, Height int
}

// format is what Inspect knows about one image format.
type format struct {
	name, contentType string
	magic             []string // any of these prefixes identifies the format
	decodeConfig      func(io.Reader) (image.Config, error)
	// headerCut reports whether data is too short to hold the header that
	// decodeConfig reads, for a decoder that does not let io.EOF show
	// through its errors; nil when the decoder does.
	headerCut func(data []byte) bool
	// checkWhole returns nil if data is structurally complete, else an
	// error wrapping ErrTruncated or ErrCorrupt.
	checkWhole func(data []byte) error
}

// formats lists the accepted formats; Inspect picks one by magic bytes.
var formats = []format{
	{
		name: "jpeg", contentType: "image/jpeg",
		magic:        []string{"\xff\xd8\xff"},
		decodeConfig: jpeg.DecodeConfig,
		checkWhole:   checkJPEG,
	},
	{
		name: "png", contentType: "image/png",
		magic:        []string{pngMagic},
		decodeConfig: png.DecodeConfig,
		checkWhole:   checkPNG,
	},
	{
		name: "gif", contentType: "image/gif",
		magic:        []string{"GIF87a", "GIF89a"},
		decodeConfig: gif.DecodeConfig,
		headerCut:    gifHeaderCut,
		checkWhole:   checkGIF,
	},
}

// Inspect sniffs the format of data from its magic bytes, reads width and
// height from its header and checks, cheaply and without decoding pixels,
// that the file is not cut short. Images with more than maxPixels pixels
// are refused (a maxPixels of zero or less refuses every image).
//
// Errors wrap one of the sentinels, decided in this order: ErrEmpty;
// ErrUnknownFormat; ErrCorrupt for a header DecodeConfig rejects, or
// ErrTruncated when the header itself is cut short; ErrTooManyPixels; then
// ErrTruncated (or ErrCorrupt) when the rest of the file is not whole. So an
// oversized image is refused as ErrTooManyPixels even if it is also cut
// short.
func Inspect(data []byte, maxPixels int64) (Info, error) {
	if len(data) == 0 {
		return Info{}, ErrEmpty
	}
	f := sniff(data)
	if f == nil {
		return Info{}, fmt.Errorf("%w: starts with % x", ErrUnknownFormat, data[:min(len(data), 8)])
	}
	cfg, err := f.decodeConfig(bytes.NewReader(data))
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || (f.headerCut != nil && f.headerCut(data)) {
			return Info{}, fmt.Errorf("%w: %s header cut short at %d bytes: %w", ErrTruncated, f.name, len(data), err)
		}
		return Info{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return Info{}, fmt.Errorf("%w: %s declares %dx%d", ErrTooManyPixels, f.name, cfg.Width, cfg.Height)
	}
	// Both sides fit in 32 bits for every format, so the product cannot
	// overflow an int64.
	if px := int64(cfg.Width) * int64(cfg.Height); px > maxPixels {
		return Info{}, fmt.Errorf("%w: %s declares %dx%d = %d pixels, limit %d", ErrTooManyPixels, f.name, cfg.Width, cfg.Height, px, maxPixels)
	}
	if err := f.checkWhole(data); err != nil {
		return Info{}, err
	}
	return Info{Format: f.name, ContentType: f.contentType, Width: cfg.Width, Height: cfg.Height}, nil
}

// sniff returns the format whose magic bytes data starts with, or nil.
func sniff(data []byte) *format {
	for i := range formats {
		for _, m := range formats[i].magic {
			if len(data) >= len(m) && string(data[:len(m)]) == m {
				return &formats[i]
			}
		}
	}
	return nil
}
