package execcmd_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/visionmesh/vision/pkg/analyzer"
	"github.com/visionmesh/vision/pkg/analyzer/execcmd"
)

func run(t *testing.T, script string, timeout time.Duration, ctx context.Context) (any, error) {
	t.Helper()
	r, err := execcmd.New(execcmd.Config{Command: []string{"/bin/sh", "-c", script}, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return r.Analyze(ctx, analyzer.Input{JobID: "j1", Task: "face", ContentType: "image/png", Data: []byte("IMAGE")})
}

func TestResult(t *testing.T) {
	// The script echoes what it got: the image's size and the job's task.
	res, err := run(t, `n=$(wc -c | tr -d ' '); printf '{"bytes":%s,"task":"%s","job":"%s"}\n' "$n" "$VISION_TASK" "$VISION_JOB_ID"`, 0, context.Background())
	if err != nil {
		t.Fatalf("Analyze: %v", err)
	}
	got, _ := json.Marshal(res)
	if want := `{"bytes":5,"task":"face","job":"j1"}`; string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name   string
		script string
		want   error // nil: a plain error
		msg    string
	}{
		{"bad image", `echo cannot decode >&2; exit 65`, analyzer.ErrBadImage, "cannot decode"},
		{"unavailable", `exit 75`, analyzer.ErrUnavailable, "status 75"},
		{"failure", `echo boom >&2; exit 3`, nil, "boom"},
		{"not json", `echo hello`, nil, "did not write JSON"},
		{"timeout", `sleep 5`, nil, "timed out"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := run(t, tc.script, 200*time.Millisecond, context.Background())
			switch {
			case err == nil:
				t.Fatalf("got nil error, want one")
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Errorf("got %v, want %v", err, tc.want)
			case tc.want == nil && (errors.Is(err, analyzer.ErrBadImage) || errors.Is(err, analyzer.ErrUnavailable)):
				t.Errorf("got %v, want a plain error", err)
			case !strings.Contains(err.Error(), tc.msg):
				t.Errorf("got %v, want it to mention %q", err, tc.msg)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %v, want the command killed at its timeout", d)
			}
		})
	}
}

func TestDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	// A child that inherits stdout must not keep Analyze waiting.
	_, err := run(t, `sleep 5 & sleep 5`, time.Minute, ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want context.DeadlineExceeded", err)
	}
}

func TestNew(t *testing.T) {
	for _, cmd := range [][]string{nil, {""}, {"/no/such/program"}} {
		if _, err := execcmd.New(execcmd.Config{Command: cmd}); err == nil {
			t.Errorf("New(%q): got nil error, want one", cmd)
		}
	}
}
