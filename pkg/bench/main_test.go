package bench_test

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"github.com/visionmesh/vision/pkg/bench"
)

// TestMain lets the test binary be a component too: the child-process tests
// start it as `bench.test child ROLE ...`, as the command does with itself.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == bench.ChildCommand {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := bench.RunChild(ctx, os.Args[2:], os.Getenv, os.Stdout)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
