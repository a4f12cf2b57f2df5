// Package execcmd is an analyzer that runs a command of the user's for each
// job, so a model can be plugged in without Go: the command gets the image on
// its standard input and writes its result as JSON on its standard output.
//
// The command also sees the job in its environment: VISION_JOB_ID,
// VISION_TASK and VISION_CONTENT_TYPE. Exit status 0 means success; 65
// (EX_DATAERR) means the image is bad (reply code 422); 75 (EX_TEMPFAIL)
// means try elsewhere (503); anything else is a failure (500), reported with
// the end of the command's standard error.
package execcmd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/visionmesh/vision/pkg/analyzer"
)

// Exit statuses with a meaning (from sysexits.h).
const (
	ExitBadImage    = 65 // EX_DATAERR
	ExitUnavailable = 75 // EX_TEMPFAIL
)

// maxOutput bounds what is kept of the command's standard output; the
// standard error keeps its last stderrTail bytes.
const (
	maxOutput  = 16 << 20
	stderrTail = 2 << 10
)

// Config configures the command.
type Config struct {
	// Command is the program and its arguments, required. It is run
	// directly, not through a shell.
	Command []string
	// Timeout bounds one run; 0 means 60s. The job's deadline applies too.
	// When either passes, the command's process group is killed.
	Timeout time.Duration
	// Dir is the command's working directory; empty means the worker's.
	Dir string
}

// Runner is an analyzer.Analyzer that runs Config.Command per job.
type Runner struct{ cfg Config }

var _ analyzer.Analyzer = (*Runner)(nil)

// New validates cfg and returns a Runner. The program must be found (on
// PATH when its name has no slash).
func New(cfg Config) (*Runner, error) {
	if len(cfg.Command) == 0 || cfg.Command[0] == "" {
		return nil, errors.New("execcmd: no command")
	}
	if _, err := exec.LookPath(cfg.Command[0]); err != nil {
		return nil, fmt.Errorf("execcmd: %w", err)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 60 * time.Second
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("execcmd: timeout %v is negative", cfg.Timeout)
	}
	return &Runner{cfg: cfg}, nil
}

// Analyze runs the command on in.Data and returns its standard output, which
// must be JSON, as a json.RawMessage. See the package comment for the exit
// statuses; a run past the job's deadline returns ctx.Err().
func (r *Runner) Analyze(ctx context.Context, in analyzer.Input) (any, error) {
	runCtx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	cmd := exec.CommandContext(runCtx, r.cfg.Command[0], r.cfg.Command[1:]...)
	cmd.Dir = r.cfg.Dir
	cmd.Env = append(os.Environ(),
		"VISION_JOB_ID="+in.JobID, "VISION_TASK="+in.Task, "VISION_CONTENT_TYPE="+in.ContentType)
	cmd.Stdin = bytes.NewReader(in.Data)
	var stdout limitedBuffer
	stdout.max = maxOutput
	var stderr tailBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// Kill the whole process group, so that a shell script's children go
	// too, and stop waiting for pipes a stray grandchild holds open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second

	err := cmd.Run()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if runCtx.Err() != nil {
		return nil, fmt.Errorf("execcmd: %s timed out after %v", r.cfg.Command[0], r.cfg.Timeout)
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			msg := fmt.Sprintf("%s exited with status %d: %s", r.cfg.Command[0], ee.ExitCode(), bytes.TrimSpace(stderr.Bytes()))
			switch ee.ExitCode() {
			case ExitBadImage:
				return nil, analyzer.BadImagef("%s", msg)
			case ExitUnavailable:
				return nil, fmt.Errorf("%w: %s", analyzer.ErrUnavailable, msg)
			}
			return nil, errors.New("execcmd: " + msg)
		}
		return nil, fmt.Errorf("execcmd: %w", err)
	}
	if stdout.overflow {
		return nil, fmt.Errorf("execcmd: %s wrote more than %d bytes", r.cfg.Command[0], maxOutput)
	}
	out := bytes.TrimSpace(stdout.Bytes())
	if !json.Valid(out) {
		return nil, fmt.Errorf("execcmd: %s did not write JSON: %.200q", r.cfg.Command[0], out)
	}
	return json.RawMessage(out), nil
}

// limitedBuffer keeps the first max bytes written and notes an overflow.
type limitedBuffer struct {
	bytes.Buffer
	max      int
	overflow bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); len(p) > room {
		b.overflow = true
		b.Buffer.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

// tailBuffer keeps the last stderrTail bytes written.
type tailBuffer struct{ buf []byte }

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.buf = append(b.buf, p...)
	if len(b.buf) > stderrTail {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-stderrTail:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) Bytes() []byte { return b.buf }
