// Command orchestrator serves POST /v1/analyze: it fans each image out over
// NATS to the task worker pools and answers with every task's result.
// Run with -dev for a self-contained system (embedded NATS, all workers).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/visionmesh/vision/pkg/orchestrator"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := orchestrator.Run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "orchestrator:", err)
		os.Exit(1)
	}
}
