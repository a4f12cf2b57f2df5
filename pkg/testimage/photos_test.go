package testimage_test

import (
	"testing"

	"github.com/visionmesh/vision/pkg/testimage"
)

func TestPhoto(t *testing.T) {
	t.Run("missing file skips", func(t *testing.T) {
		var inner *testing.T
		t.Run("inner", func(t *testing.T) {
			inner = t
			testimage.Photo(t, "no-such-photo.png")
			t.Errorf("Photo returned for a missing file, want a skip")
		})
		if !inner.Skipped() {
			t.Errorf("skipped: got false, want true")
		}
	})
	t.Run("astronaut", func(t *testing.T) {
		data := testimage.Photo(t, "astronaut.png")
		mustDecode(t, data, "png", 512, 512)
	})
}
