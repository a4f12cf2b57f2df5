package imageinfo_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"testing"

	"github.com/visionmesh/vision/pkg/imageinfo"
	"github.com/visionmesh/vision/pkg/testimage"
)

// limit is the pixel limit the tests pass unless a case is about the limit.
const limit = 50_000_000

// sentinels lists every error Inspect may wrap.
var sentinels = []error{
	imageinfo.ErrEmpty,
	imageinfo.ErrUnknownFormat,
	imageinfo.ErrCorrupt,
	imageinfo.ErrTruncated,
	imageinfo.ErrTooManyPixels,
}

// pngChunk encodes one PNG chunk with its CRC.
func pngChunk(typ string, data []byte) []byte {
	out := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	out = append(out, typ...)
	out = append(out, data...)
	return binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(out[4:]))
}

// pngHeader composes by hand a PNG that is only a signature, an IHDR chunk
// declaring width x height 8-bit RGBA, and (if withIEND) an IEND chunk: the
// shape of a decompression bomb's header.
func pngHeader(width, height uint32, withIEND bool) []byte {
	ihdr := binary.BigEndian.AppendUint32(nil, width)
	ihdr = binary.BigEndian.AppendUint32(ihdr, height)
	ihdr = append(ihdr, 8, 6, 0, 0, 0) // depth, colour type RGBA, compression, filter, interlace
	out := append([]byte("\x89PNG\r\n\x1a\n"), pngChunk("IHDR", ihdr)...)
	if withIEND {
		out = append(out, pngChunk("IEND", nil)...)
	}
	return out
}

// gifHeader composes a GIF with no global colour table and no frames:
// header, logical screen descriptor, trailer.
func gifHeader(width, height uint16) []byte {
	out := []byte("GIF89a")
	out = binary.LittleEndian.AppendUint16(out, width)
	out = binary.LittleEndian.AppendUint16(out, height)
	return append(out, 0, 0, 0, 0x3b)
}

// jpegMarker returns the offset of the first FF <marker> in data.
func jpegMarker(t *testing.T, data []byte, marker byte) int {
	t.Helper()
	i := bytes.Index(data, []byte{0xff, marker})
	if i < 0 {
		t.Fatalf("no marker FF %02X in the test JPEG", marker)
	}
	return i
}

// patch returns a copy of data with b written at offset off.
func patch(data []byte, off int, b ...byte) []byte {
	out := bytes.Clone(data)
	copy(out[off:], b)
	return out
}

// concat returns a new slice holding the parts one after another.
func concat(parts ...[]byte) []byte {
	return bytes.Join(parts, nil)
}

func TestInspect(t *testing.T) {
	jpg := testimage.JPEG(64, 48, 90, 1)
	pngData := testimage.PNG(40, 30, 2)
	gifData := testimage.GIF(33, 17)
	sof := jpegMarker(t, jpg, 0xc0)
	sos := jpegMarker(t, jpg, 0xda)
	iend := bytes.Index(pngData, []byte("IEND")) - 4

	jpegInfo := imageinfo.Info{Format: "jpeg", ContentType: "image/jpeg", Width: 64, Height: 48}
	pngInfo := imageinfo.Info{Format: "png", ContentType: "image/png", Width: 40, Height: 30}
	gifInfo := imageinfo.Info{Format: "gif", ContentType: "image/gif", Width: 33, Height: 17}

	tests := []struct {
		name      string
		data      []byte
		maxPixels int64
		want      imageinfo.Info
		wantErr   error
	}{
		// Whole images.
		{"jpeg", jpg, limit, jpegInfo, nil},
		{"jpeg with bytes after EOI", concat(jpg, []byte("camera maker notes")), limit, jpegInfo, nil},
		{"jpeg with fill bytes before a marker", concat(jpg[:2], []byte{0xff, 0xff}, jpg[2:]), limit, jpegInfo, nil},
		{"png", pngData, limit, pngInfo, nil},
		{"png with bytes after IEND", concat(pngData, []byte("junk")), limit, pngInfo, nil},
		{"gif", gifData, limit, gifInfo, nil},
		{"gif with zero padding", concat(gifData, make([]byte, 100)), limit, gifInfo, nil},
		{"gif without frames", gifHeader(3, 2), limit, imageinfo.Info{Format: "gif", ContentType: "image/gif", Width: 3, Height: 2}, nil},
		{"exactly maxPixels", jpg, 64 * 48, jpegInfo, nil},

		// ErrEmpty.
		{"nil", nil, limit, imageinfo.Info{}, imageinfo.ErrEmpty},
		{"zero bytes", []byte{}, limit, imageinfo.Info{}, imageinfo.ErrEmpty},

		// ErrUnknownFormat.
		{"text", []byte("hello, world"), limit, imageinfo.Info{}, imageinfo.ErrUnknownFormat},
		{"one byte", []byte{0xff}, limit, imageinfo.Info{}, imageinfo.ErrUnknownFormat},
		{"bmp", []byte("BM\x36\x00\x00\x00\x00\x00"), limit, imageinfo.Info{}, imageinfo.ErrUnknownFormat},
		{"webp", []byte("RIFF\x24\x00\x00\x00WEBPVP8 "), limit, imageinfo.Info{}, imageinfo.ErrUnknownFormat},
		{"png signature damaged", patch(pngData, 1, 'p'), limit, imageinfo.Info{}, imageinfo.ErrUnknownFormat},
		{"gif version unknown", patch(gifData, 3, '9', '0'), limit, imageinfo.Info{}, imageinfo.ErrUnknownFormat},

		// ErrCorrupt.
		{"jpeg lossless SOF", patch(jpg, sof+1, 0xc3), limit, imageinfo.Info{}, imageinfo.ErrCorrupt},
		{"jpeg EOI instead of SOF", []byte{0xff, 0xd8, 0xff, 0xd9}, limit, imageinfo.Info{}, imageinfo.ErrCorrupt},
		{"jpeg EOI before any scan", concat(jpg[:sos], []byte{0xff, 0xd9}), limit, imageinfo.Info{}, imageinfo.ErrCorrupt},
		{"jpeg segment length below 2", concat(jpg[:sos], []byte{0xff, 0xda, 0x00, 0x01}, jpg[sos:]), limit, imageinfo.Info{}, imageinfo.ErrCorrupt},
		{"png IHDR CRC wrong", patch(pngData, 29, 0, 0, 0, 0), limit, imageinfo.Info{}, imageinfo.ErrCorrupt},
		{"png IDAT before IHDR", concat(pngData[:8], pngChunk("IDAT", []byte{1, 2}), pngData[8:]), limit, imageinfo.Info{}, imageinfo.ErrCorrupt},
		{"png zero width", pngHeader(0, 10, true), limit, imageinfo.Info{}, imageinfo.ErrCorrupt},
		{"png chunk length over 2^31", concat(pngData[:iend], []byte{0x80, 0, 0, 0}, []byte("IDAT")), limit, imageinfo.Info{}, imageinfo.ErrCorrupt},

		// ErrTruncated.
		{"jpeg cut in header", jpg[:10], limit, imageinfo.Info{}, imageinfo.ErrTruncated},
		{"jpeg cut in SOF", jpg[:sof+6], limit, imageinfo.Info{}, imageinfo.ErrTruncated},
		{"jpeg cut before SOS", jpg[:sos], limit, imageinfo.Info{}, imageinfo.ErrTruncated},
		{"jpeg cut in SOS header", jpg[:sos+5], limit, imageinfo.Info{}, imageinfo.ErrTruncated},
		{"jpeg cut in scan", jpg[:sos+(len(jpg)-sos)/2], limit, imageinfo.Info{}, imageinfo.ErrTruncated},
		{"jpeg without EOI", jpg[:len(jpg)-2], limit, imageinfo.Info{}, imageinfo.ErrTruncated},
		{"png signature only", pngData[:8], limit, imageinfo.Info{}, imageinfo.ErrTruncated},
		{"png cut in IHDR", pngData[:20], limit, imageinfo.Info{}, imageinfo.ErrTruncated},
		{"png cut in IDAT", pngData[:len(pngData)/2], limit, imageinfo.Info{}, imageinfo.ErrTruncated},
		{"png without IEND", pngData[:iend], limit, imageinfo.Info{}, imageinfo.ErrTruncated},
		{"png cut in IEND", pngData[:len(pngData)-1], limit, imageinfo.Info{}, imageinfo.ErrTruncated},
		{"png header only", pngHeader(10, 10, false), limit, imageinfo.Info{}, imageinfo.ErrTruncated},
		{"gif magic only", gifData[:6], limit, imageinfo.Info{}, imageinfo.ErrTruncated},
		{"gif cut in screen descriptor", gifData[:10], limit, imageinfo.Info{}, imageinfo.ErrTruncated},
		{"gif cut in colour table", gifData[:100], limit, imageinfo.Info{}, imageinfo.ErrTruncated},
		{"gif cut in frame", gifData[:len(gifData)*3/4], limit, imageinfo.Info{}, imageinfo.ErrTruncated},
		{"gif without trailer", gifData[:len(gifData)-1], limit, imageinfo.Info{}, imageinfo.ErrTruncated},
		{"gif header only", gifHeader(3, 2)[:13], limit, imageinfo.Info{}, imageinfo.ErrTruncated},

		// ErrTooManyPixels.
		{"one pixel over", jpg, 64*48 - 1, imageinfo.Info{}, imageinfo.ErrTooManyPixels},
		{"zero limit", pngData, 0, imageinfo.Info{}, imageinfo.ErrTooManyPixels},
		{"negative limit", gifData, -1, imageinfo.Info{}, imageinfo.ErrTooManyPixels},
		{"gif zero width", gifHeader(0, 5), limit, imageinfo.Info{}, imageinfo.ErrTooManyPixels},
		{"gif zero height", gifHeader(5, 0), limit, imageinfo.Info{}, imageinfo.ErrTooManyPixels},
		{"jpeg declaring 65500x65500", patch(jpg, sof+5, 0xff, 0xdc, 0xff, 0xdc), limit, imageinfo.Info{}, imageinfo.ErrTooManyPixels},
		{"png 50000x50000 bomb", pngHeader(50000, 50000, true), limit, imageinfo.Info{}, imageinfo.ErrTooManyPixels},
		{"too many pixels wins over truncated", jpg[:len(jpg)/2], 100, imageinfo.Info{}, imageinfo.ErrTooManyPixels},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := imageinfo.Inspect(tc.data, tc.maxPixels)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error: got %v, want %v", err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("info: got %+v, want %+v", got, tc.want)
			}
			if err != nil {
				checkOneSentinel(t, err)
			}
		})
	}
}

// checkOneSentinel fails unless err wraps exactly one of the sentinels.
func checkOneSentinel(t *testing.T, err error) {
	t.Helper()
	n := 0
	for _, s := range sentinels {
		if errors.Is(err, s) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("error %q wraps %d sentinels, want 1", err, n)
	}
}

// TestCorruptWrapsDecoderError shows that ErrCorrupt keeps the standard
// library's error reachable.
func TestCorruptWrapsDecoderError(t *testing.T) {
	_, err := imageinfo.Inspect(pngHeader(0, 10, true), limit)
	var fe png.FormatError
	if !errors.As(err, &fe) {
		t.Errorf("errors.As(%v, png.FormatError): got false, want true", err)
	}
}

// TestDecompressionBomb shows that a PNG declaring 50000x50000 RGBA pixels
// (10 GB once decoded) is refused from its 45-byte header, with only the
// allocations DecodeConfig makes.
func TestDecompressionBomb(t *testing.T) {
	bomb := pngHeader(50000, 50000, true)
	if _, err := png.DecodeConfig(bytes.NewReader(bomb)); err != nil {
		t.Fatalf("the hand-made header should be a valid PNG header: %v", err)
	}
	_, err := imageinfo.Inspect(bomb, limit)
	if !errors.Is(err, imageinfo.ErrTooManyPixels) {
		t.Fatalf("error: got %v, want %v", err, imageinfo.ErrTooManyPixels)
	}
	allocs := testing.AllocsPerRun(20, func() { imageinfo.Inspect(bomb, limit) })
	if allocs > 20 {
		t.Errorf("allocations per refusal: got %v, want at most 20", allocs)
	}
	t.Logf("%d-byte bomb refused with %v allocations: %v", len(bomb), allocs, err)
}

// TestPhotos checks Inspect against image.DecodeConfig on the real photos
// from testdata/images (skipped when they have not been fetched), whole and
// cut short.
func TestPhotos(t *testing.T) {
	tests := []struct {
		name   string
		format string
	}{
		{"astronaut.png", "png"},
		{"camera.png", "png"},
		{"chelsea.png", "png"},
		{"coffee.png", "png"},
		{"motorcycle_left.png", "png"},
		{"rocket.jpg", "jpeg"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := testimage.Photo(t, tc.name)
			cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("DecodeConfig: %v", err)
			}
			want := imageinfo.Info{Format: format, ContentType: "image/" + format, Width: cfg.Width, Height: cfg.Height}
			got, err := imageinfo.Inspect(data, limit)
			if err != nil || got != want || got.Format != tc.format {
				t.Errorf("Inspect: got %+v, %v, want %+v, nil", got, err, want)
			}
			for _, cut := range []int{len(data) / 10, len(data) / 2, len(data) - 3} {
				if _, err := imageinfo.Inspect(data[:cut], limit); !errors.Is(err, imageinfo.ErrTruncated) {
					t.Errorf("cut at %d of %d bytes: got %v, want %v", cut, len(data), err, imageinfo.ErrTruncated)
				}
			}
		})
	}
}

// TestTruncatedPhoto checks the truncated JPEG that scikit-image ships for
// its own tests.
func TestTruncatedPhoto(t *testing.T) {
	data := testimage.Photo(t, "truncated.jpg")
	if _, err := imageinfo.Inspect(data, limit); !errors.Is(err, imageinfo.ErrTruncated) {
		t.Errorf("got %v, want %v", err, imageinfo.ErrTruncated)
	}
}

func ExampleInspect() {
	data := testimage.JPEG(640, 480, 80, 1)

	info, err := imageinfo.Inspect(data, 1_000_000)
	fmt.Println(info.Format, info.ContentType, info.Width, info.Height, err)

	_, err = imageinfo.Inspect(data[:len(data)/2], 1_000_000)
	fmt.Println(errors.Is(err, imageinfo.ErrTruncated))

	_, err = imageinfo.Inspect(data, 100_000)
	fmt.Println(err)
	// Output:
	// jpeg image/jpeg 640 480 <nil>
	// true
	// too many pixels: jpeg declares 640x480 = 307200 pixels, limit 100000
}

func BenchmarkInspect(b *testing.B) {
	benchmarks := []struct {
		name string
		data []byte
	}{
		{"jpeg-20KB", testimage.JPEGOfSize(20_000, 1)},
		{"jpeg-2MB", testimage.JPEGOfSize(2_000_000, 1)},
		{"png-1MP", testimage.PNG(1024, 1024, 1)},
		{"gif-1MP", testimage.GIF(1024, 1024)},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := imageinfo.Inspect(bm.data, limit); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
