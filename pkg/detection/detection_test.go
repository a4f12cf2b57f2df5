package detection_test

import (
	"errors"
	"fmt"
	"image"
	"math"
	"testing"

	"github.com/visionmesh/vision/pkg/analyzer"
	"github.com/visionmesh/vision/pkg/detection"
	"github.com/visionmesh/vision/pkg/testimage"
)

func ExampleNMS() {
	ds := []detection.Detection{
		{Label: "car", Score: 0.6, Box: detection.Box{X: 12, Y: 10, W: 100, H: 50}},
		{Label: "car", Score: 0.9, Box: detection.Box{X: 10, Y: 10, W: 100, H: 50}},
		{Label: "bus", Score: 0.5, Box: detection.Box{X: 10, Y: 10, W: 100, H: 50}},
		{Label: "car", Score: 0.7, Box: detection.Box{X: 300, Y: 10, W: 100, H: 50}},
	}
	for _, d := range detection.NMS(ds, 0.4, true) {
		fmt.Println(d.Label, d.Score)
	}
	// Output:
	// car 0.9
	// car 0.7
	// bus 0.5
}

func TestIoU(t *testing.T) {
	tests := []struct {
		name string
		a, b detection.Box
		want float64
	}{
		{"same", detection.Box{W: 10, H: 10}, detection.Box{W: 10, H: 10}, 1},
		{"apart", detection.Box{W: 10, H: 10}, detection.Box{X: 20, W: 10, H: 10}, 0},
		{"half", detection.Box{W: 10, H: 10}, detection.Box{X: 5, W: 5, H: 10}, 0.5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := detection.IoU(tc.a, tc.b); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	img, err := detection.Decode(testimage.PNG(300, 200, 1), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := img.Rect; got != image.Rect(0, 0, 300, 200) {
		t.Errorf("got bounds %v, want 300x200", got)
	}
	for _, tc := range []struct {
		name string
		data []byte
		max  int
	}{
		{"garbage", []byte("nope"), 0},
		{"over the pixel limit", testimage.PNG(300, 200, 1), 300*200 - 1},
		{"truncated", testimage.JPEG(300, 200, 90, 1)[:300], 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := detection.Decode(tc.data, tc.max); !errors.Is(err, analyzer.ErrBadImage) {
				t.Errorf("got %v, want ErrBadImage", err)
			}
		})
	}
}

func TestTensorLetterbox(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 4, 2))
	for i := range img.Pix {
		img.Pix[i] = 200
	}
	// A 4x2 image in a 4x4 square: the bottom half is black.
	x := detection.Tensor(img, image.Rect(0, 0, 4, 4), 4, 4, detection.NCHW, [3]float32{}, [3]float32{1, 1, 1})
	if x[0] != 200 || x[15] != 0 {
		t.Errorf("got top-left %v and bottom-right %v, want 200 and 0", x[0], x[15])
	}
}

func TestNMSEmptyIsNotNil(t *testing.T) {
	if got := detection.NMS(nil, 0.5, false); got == nil {
		t.Errorf("got nil, want an empty slice")
	}
}

func TestRotated(t *testing.T) {
	// Left half red, right half blue.
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	for y := 0; y < 8; y++ {
		for x := 0; x < 8; x++ {
			o := img.PixOffset(x, y)
			if x < 4 {
				img.Pix[o] = 255
			} else {
				img.Pix[o+2] = 255
			}
			img.Pix[o+3] = 255
		}
	}
	one := [3]float32{1, 1, 1}
	tests := []struct {
		name        string
		angle       float64
		top, bottom string // colour of the top-left and bottom-left corners
	}{
		{"upright", 0, "red", "red"},
		// Turned a quarter: the image's right half (blue) comes up on top.
		{"quarter turn", math.Pi / 2, "blue", "red"},
	}
	colour := func(x []float32, i int) string {
		switch {
		case x[i] == 255 && x[2*64+i] == 0:
			return "red"
		case x[i] == 0 && x[2*64+i] == 255:
			return "blue"
		}
		return fmt.Sprint(x[i], x[2*64+i])
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := detection.Rotated(img, 4, 4, 8, tc.angle, 8, 8, detection.NCHW, [3]float32{}, one)
			if top, bottom := colour(x, 0), colour(x, 7*8); top != tc.top || bottom != tc.bottom {
				t.Errorf("got %s top-left and %s bottom-left, want %s and %s", top, bottom, tc.top, tc.bottom)
			}
		})
	}
}
