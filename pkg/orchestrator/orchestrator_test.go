package orchestrator_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/visionmesh/vision/pkg/orchestrator"
)

func startDev(t testing.TB, args ...string) *orchestrator.Orchestrator {
	t.Helper()
	args = append([]string{"-dev", "-dev-nats-port=-1", "-addr", "127.0.0.1:0", "-analyzer", "simulate", "-work", "10ms", "-dev-store", t.TempDir()}, args...)
	cfg, err := orchestrator.ParseFlags(args, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	o, err := orchestrator.Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := o.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return o
}

// A client that sends headers slower than -read-header-timeout is cut off.
func TestSlowHeadersAreCutOff(t *testing.T) {
	o := startDev(t, "-read-header-timeout", "300ms")
	c, err := net.Dial("tcp", o.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "POST /v1/analyze HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("got %d, want the connection cut or a 4xx", resp.StatusCode)
		}
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("connection held for %v, want it cut after about 300ms", took)
	}
}

func TestReadyAndHealthy(t *testing.T) {
	o := startDev(t)
	for _, path := range []string{"/healthz", "/readyz"} {
		deadline := time.Now().Add(5 * time.Second)
		for {
			resp, err := http.Get("http://" + o.Addr() + path)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not 200 within 5s (%v)", path, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func TestParseFlagsRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"timeout over max", []string{"-timeout", "2m", "-max-timeout", "1m"}, nil},
		{"bad task name", []string{"-tasks", "a.b"}, nil},
		{"duplicate task", nil, map[string]string{"TASKS": "face,face"}},
		{"lease too short", []string{"-heartbeat", "1s", "-lease", "1s"}, nil},
		{"unknown flag", []string{"-nope"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := orchestrator.ParseFlags(tc.args, func(k string) string { return tc.env[k] })
			if err == nil {
				t.Errorf("got nil error")
			}
		})
	}
}

func TestRunReturnsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- orchestrator.Run(ctx, []string{"-dev", "-dev-nats-port=-1", "-addr", "127.0.0.1:0", "-analyzer", "simulate", "-dev-store", t.TempDir()},
			func(string) string { return "" }, io.Discard)
	}()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: got %v, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return within 15s of cancel")
	}
}
