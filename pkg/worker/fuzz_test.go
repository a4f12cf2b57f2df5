package worker

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/visionmesh/vision/pkg/job"
)

// FuzzParseJob: whatever headers a job carries, parseJob must not panic; a
// job it accepts has an id, a deadline after now and a sane heartbeat, and a
// job it refuses gets one of the documented codes.
func FuzzParseJob(f *testing.F) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	f.Add("id-1", job.FormatDeadline(now.Add(time.Second)), "250ms")
	f.Add("", job.FormatDeadline(now.Add(time.Second)), "")
	f.Add("id", "yesterday", "")
	f.Add("id", job.FormatDeadline(now.Add(-time.Second)), "1s")
	f.Add("id", job.FormatDeadline(now.Add(time.Second)), "-5s")
	f.Add("id", job.FormatDeadline(now.Add(time.Second)), "1ns")
	f.Fuzz(func(t *testing.T, id, deadline, beat string) {
		h := micro.Headers{}
		for k, v := range map[string]string{job.HeaderID: id, job.HeaderDeadline: deadline, job.HeaderHeartbeat: beat} {
			if v != "" {
				h[k] = []string{v}
			}
		}
		m, code, err := parseJob(h, now)
		if err != nil {
			if code != job.CodeBadJob && code != job.CodeDeadline {
				t.Fatalf("refused with code %q", code)
			}
			return
		}
		if m.id == "" || !m.deadline.After(now) || (m.beat != 0 && m.beat < minHeartbeat) {
			t.Fatalf("accepted %+v", m)
		}
	})
}
