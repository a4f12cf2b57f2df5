// Package embednats runs a nats-server inside the process: the
// orchestrator's one-command dev mode and the tests use it, so both talk to
// a real server, never a mock.
package embednats

import (
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// MaxPayload is the message size limit of the embedded server; it matches
// nats.conf so images up to the orchestrator's body limit fit.
const MaxPayload = 8 << 20

// Options configure an embedded server.
type Options struct {
	// Host and Port to listen on; Port -1 picks a free port.
	Host string
	Port int
	// Name is the server name (useful in clusters).
	Name string
	// Tweak, if set, edits the server options before start (clustering,
	// TLS, auth in tests).
	Tweak func(*server.Options)
}

// Start starts a server and waits until it accepts connections.
func Start(o Options) (*server.Server, error) {
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	opts := &server.Options{
		ServerName:     o.Name,
		Host:           o.Host,
		Port:           o.Port,
		MaxPayload:     MaxPayload,
		NoLog:          true,
		NoSigs:         true,
		MaxControlLine: 4096,
	}
	if o.Tweak != nil {
		o.Tweak(opts)
	}
	return StartOptions(opts)
}

// StartOptions starts a server with opts as given (for example loaded from
// a configuration file) and waits until it accepts connections.
func StartOptions(opts *server.Options) (*server.Server, error) {
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded nats: not ready on %s:%d after 10s", opts.Host, opts.Port)
	}
	return s, nil
}
