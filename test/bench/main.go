// Command bench measures the system end to end on loopback and compares it
// with a broker-less HTTP fan-out: go run ./test/bench [-quick] [-out dir].
// It prints a table and writes results.json and chart.svg (see
// docs/performance.md). The same binary runs each component as a child
// process of itself (bench child ROLE ...).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/visionmesh/vision/pkg/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := bench.Main(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
