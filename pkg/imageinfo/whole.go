package imageinfo

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// The checks below look only at a file's framing (chunk lengths, marker
// segments, the trailer byte), never at compressed pixel data: they cost a
// few comparisons per chunk or segment plus, for JPEG, one backwards scan
// that stops at the end-of-image marker.

// pngMagic is the PNG file signature.
const pngMagic = "\x89PNG\r\n\x1a\n"

// checkPNG walks the chunk list (4-byte length, 4-byte type, data, 4-byte
// CRC) and requires an IEND chunk with no chunk running past the end of
// data. Bytes after IEND are allowed. CRCs are not checked.
func checkPNG(data []byte) error {
	n := uint64(len(data))
	off := uint64(len(pngMagic))
	for {
		if off == n {
			return fmt.Errorf("%w: png: no IEND chunk before the end at %d bytes", ErrTruncated, n)
		}
		if n-off < 8 {
			return fmt.Errorf("%w: png: chunk header at offset %d cut short (%d bytes)", ErrTruncated, off, n)
		}
		length := binary.BigEndian.Uint32(data[off:])
		typ := data[off+4 : off+8]
		if length > 1<<31-1 {
			return fmt.Errorf("%w: png: chunk %q at offset %d has length %d", ErrCorrupt, typ, off, length)
		}
		end := off + 12 + uint64(length)
		if end > n {
			return fmt.Errorf("%w: png: chunk %q at offset %d needs %d bytes, data has %d", ErrTruncated, typ, off, end, n)
		}
		if string(typ) == "IEND" {
			return nil
		}
		off = end
	}
}

// checkJPEG walks the marker segments from SOI to the first start-of-scan
// (SOS), then requires an end-of-image marker (FF D9) somewhere after it.
// Entropy-coded data escapes FF as FF 00, so FF D9 cannot occur inside a
// scan; the last one in the file is looked for so that bytes appended after
// EOI (as some cameras do) are allowed.
func checkJPEG(data []byte) error {
	n := len(data)
	off := 2 // after SOI
	for {
		// Like libjpeg and image/jpeg, skip stray bytes before a marker,
		// then any number of FF fill bytes.
		for off < n && data[off] != 0xff {
			off++
		}
		for off < n && data[off] == 0xff {
			off++
		}
		if off >= n {
			return fmt.Errorf("%w: jpeg: no start of scan before the end at %d bytes", ErrTruncated, n)
		}
		marker := data[off]
		off++
		switch {
		case marker == 0x00, marker == 0x01, marker == 0xd8, 0xd0 <= marker && marker <= 0xd7:
			// Stuffed byte, TEM, SOI, RSTn: no length follows.
			continue
		case marker == 0xd9:
			return fmt.Errorf("%w: jpeg: end of image at offset %d before any scan", ErrCorrupt, off-2)
		}
		if n-off < 2 {
			return fmt.Errorf("%w: jpeg: length of segment %02X at offset %d cut short", ErrTruncated, marker, off-2)
		}
		length := int(binary.BigEndian.Uint16(data[off:]))
		if length < 2 {
			return fmt.Errorf("%w: jpeg: segment %02X at offset %d has length %d", ErrCorrupt, marker, off-2, length)
		}
		if n-off < length {
			return fmt.Errorf("%w: jpeg: segment %02X at offset %d needs %d bytes, data has %d", ErrTruncated, marker, off-2, off+length, n)
		}
		off += length
		if marker == 0xda {
			break
		}
	}
	if bytes.LastIndex(data[off:], []byte{0xff, 0xd9}) < 0 {
		return fmt.Errorf("%w: jpeg: no end-of-image marker after the scan at offset %d", ErrTruncated, off)
	}
	return nil
}

// gifHeaderLen returns the length of the GIF header, logical screen
// descriptor and global colour table, the part gif.DecodeConfig reads.
// data must hold at least the 13 bytes of header and screen descriptor.
func gifHeaderLen(data []byte) int {
	const fixed = 13 // "GIF89a", width, height, flags, background, aspect
	if flags := data[10]; flags&0x80 != 0 {
		return fixed + 3<<(flags&7+1)
	}
	return fixed
}

// gifHeaderCut reports whether data ends before the end of the part of a
// GIF that gif.DecodeConfig reads; its errors hide io.EOF.
func gifHeaderCut(data []byte) bool {
	return len(data) < 13 || len(data) < gifHeaderLen(data)
}

// checkGIF requires the trailer byte 0x3B as the last byte after the
// header, ignoring trailing zero padding.
func checkGIF(data []byte) error {
	last := len(data) - 1
	for last >= 0 && data[last] == 0 {
		last--
	}
	if last < gifHeaderLen(data) || data[last] != 0x3b {
		return fmt.Errorf("%w: gif: no trailer byte 3B at the end of %d bytes", ErrTruncated, len(data))
	}
	return nil
}
