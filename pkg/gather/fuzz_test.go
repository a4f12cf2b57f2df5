package gather

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/visionmesh/vision/pkg/job"
)

// FuzzHandleReply feeds arbitrary reply messages to a running task: whatever
// a worker (or anyone allowed to answer) sends, the gatherer must not panic,
// must end in a known status, and must only pass on valid JSON as a result.
func FuzzHandleReply(f *testing.F) {
	f.Add("", "", "", "", "", []byte(`{"detections":[]}`))
	f.Add("503", "", "", "", "", []byte(nil))
	f.Add("", job.StatusWorking, "", "", "", []byte(nil))
	f.Add("", "", job.CodeBusy, "full", "w1", []byte(nil))
	f.Add("", "", job.CodeDeadline, "late", "w1", []byte("x"))
	f.Add("", "", "", "", "w2", []byte("{not json"))
	f.Fuzz(func(t *testing.T, status, jobStatus, code, desc, worker string, data []byte) {
		h := nats.Header{}
		for k, v := range map[string]string{"Status": status, job.HeaderStatus: jobStatus,
			micro.ErrorCodeHeader: code, micro.ErrorHeader: desc, job.HeaderWorker: worker} {
			if v != "" {
				h.Set(k, v)
			}
		}
		g := &Gatherer{cfg: Defaults(), calls: map[string]call{}}
		r := g.newRun(Job{ID: "j", Tasks: []string{"face"}, Timeout: time.Second})
		defer r.release()
		now := time.Now()
		t0 := &r.ts[0]
		t0.attempts, t0.inFlight, t0.started, t0.deadline, t0.lastSeen = 1, true, now, now.Add(time.Second), now
		r.handle(reply{idx: 0, msg: &nats.Msg{Header: h, Data: data}, at: now})

		o := r.out[0]
		if !t0.done {
			if r.remaining != 1 {
				t.Fatalf("remaining: got %d, want 1", r.remaining)
			}
			return
		}
		switch o.Status {
		case StatusOK:
			if !json.Valid(o.Result) || o.Error != nil {
				t.Fatalf("ok with result %q, error %v", o.Result, o.Error)
			}
		case StatusError, StatusTimeout, StatusUnavailable:
			if o.Error == nil || o.Result != nil {
				t.Fatalf("%s with result %q, error %v", o.Status, o.Result, o.Error)
			}
		default:
			t.Fatalf("unknown status %q", o.Status)
		}
	})
}
