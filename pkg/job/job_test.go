package job_test

import (
	"fmt"
	"testing"

	"github.com/visionmesh/vision/pkg/job"
)

func ExampleParseObjectRef() {
	ref := job.ObjectRef("vision_images", "0b6c7c8e-2f0e-4a4b-9a59-2bd0c6a1e8a4")
	bucket, name, err := job.ParseObjectRef(ref)
	fmt.Println(ref)
	fmt.Println(bucket, name, err)
	// Output:
	// vision_images/0b6c7c8e-2f0e-4a4b-9a59-2bd0c6a1e8a4
	// vision_images 0b6c7c8e-2f0e-4a4b-9a59-2bd0c6a1e8a4 <nil>
}

func TestParseObjectRefRefuses(t *testing.T) {
	for _, ref := range []string{"", "vision_images", "vision_images/", "/name", "a.b/name", "a b/name"} {
		t.Run(ref, func(t *testing.T) {
			if b, n, err := job.ParseObjectRef(ref); err == nil {
				t.Errorf("got %q %q, want an error", b, n)
			}
		})
	}
}
