package jobs_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/visionmesh/vision/pkg/jobs"
)

func ExampleSign() {
	fmt.Println(jobs.Sign("secret", []byte(`{"job_id":"x"}`)))
	// Output: sha256=207021c44c83e8cb38b27d24c5e3cb7754855c19a5e7a22145b679b04cd72e69
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		edit func(*jobs.Config)
		ok   bool
	}{
		{"defaults", func(*jobs.Config) {}, true},
		{"short ttl", func(c *jobs.Config) { c.TTL = time.Second }, false},
		{"short ack wait", func(c *jobs.Config) { c.AckWait = 10 * time.Millisecond }, false},
		{"no concurrency", func(c *jobs.Config) { c.Concurrency = 0 }, false},
		{"bad prefix", func(c *jobs.Config) { c.Prefix = "a b" }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := jobs.Defaults()
			tc.edit(&c)
			if err := c.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tc.ok)
			}
		})
	}
}
