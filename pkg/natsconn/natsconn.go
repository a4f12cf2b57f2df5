// Package natsconn turns flags and environment variables into a NATS
// connection that reconnects on its own and logs what happens to it. The
// orchestrator and the workers share it, so both accept the same settings.
package natsconn

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Config says where NATS is and how to authenticate.
type Config struct {
	// URL is one or more comma-separated server URLs (a cluster).
	URL string
	// User and Password authenticate with user/password.
	User, Password string
	// Token authenticates with a token.
	Token string
	// Creds is a path to a .creds file (JWT + nkey).
	Creds string
	// CA, Cert and Key are PEM paths for TLS; CA alone verifies the server.
	CA, Cert, Key string
	// Name is the connection name shown in server monitoring.
	Name string
	// ReconnectWait is the pause between reconnect attempts.
	ReconnectWait time.Duration
}

// RegisterFlags binds c's fields to flags, with defaults taken from the
// environment through getenv (NATS_URL, NATS_USER, NATS_PASSWORD,
// NATS_TOKEN, NATS_CREDS, NATS_CA, NATS_CERT, NATS_KEY). Flags beat env.
func (c *Config) RegisterFlags(fs *flag.FlagSet, getenv func(string) string) {
	env := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	fs.StringVar(&c.URL, "nats", env("NATS_URL", nats.DefaultURL), "NATS server URL(s), comma-separated for a cluster (env NATS_URL)")
	fs.StringVar(&c.User, "nats-user", env("NATS_USER", ""), "NATS user (env NATS_USER)")
	fs.StringVar(&c.Password, "nats-password", env("NATS_PASSWORD", ""), "NATS password (env NATS_PASSWORD; prefer the env var)")
	fs.StringVar(&c.Token, "nats-token", env("NATS_TOKEN", ""), "NATS token (env NATS_TOKEN; prefer the env var)")
	fs.StringVar(&c.Creds, "nats-creds", env("NATS_CREDS", ""), "NATS credentials file (env NATS_CREDS)")
	fs.StringVar(&c.CA, "nats-ca", env("NATS_CA", ""), "PEM CA file to verify the NATS server (env NATS_CA)")
	fs.StringVar(&c.Cert, "nats-cert", env("NATS_CERT", ""), "PEM client certificate for NATS TLS (env NATS_CERT)")
	fs.StringVar(&c.Key, "nats-key", env("NATS_KEY", ""), "PEM client key for NATS TLS (env NATS_KEY)")
	fs.DurationVar(&c.ReconnectWait, "nats-reconnect-wait", 250*time.Millisecond, "pause between NATS reconnect attempts")
}

// Validate reports whether c is usable.
func (c Config) Validate() error {
	if strings.TrimSpace(c.URL) == "" {
		return fmt.Errorf("nats: no server URL")
	}
	if (c.Cert == "") != (c.Key == "") {
		return fmt.Errorf("nats: client certificate and key go together")
	}
	return nil
}

// LogValue masks secrets when the config is logged.
func (c Config) LogValue() slog.Value {
	mask := func(s string) string {
		if s == "" {
			return ""
		}
		return "***"
	}
	return slog.GroupValue(
		slog.String("url", redactURLs(c.URL)),
		slog.String("user", c.User),
		slog.String("password", mask(c.Password)),
		slog.String("token", mask(c.Token)),
		slog.String("creds", c.Creds),
		slog.String("ca", c.CA),
	)
}

func redactURLs(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}

// Options returns the nats.go options for c: reconnect forever (also when the
// first connect fails, so a process may start before its server), log
// connection events on log, and call onErr for asynchronous errors such as
// slow consumers. extra options are appended last.
func (c Config) Options(log *slog.Logger, onErr func(error), extra ...nats.Option) []nats.Option {
	opts := []nats.Option{
		nats.Name(c.Name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(c.ReconnectWait),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.PingInterval(10 * time.Second),
		nats.MaxPingsOutstanding(3),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			log.Warn("nats disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ConnectHandler(func(nc *nats.Conn) {
			log.Info("nats connected", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			log.Error("nats async error", "subject", subj, "err", err)
			if onErr != nil {
				onErr(err)
			}
		}),
	}
	if c.User != "" {
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	if c.Token != "" {
		opts = append(opts, nats.Token(c.Token))
	}
	if c.Creds != "" {
		opts = append(opts, nats.UserCredentials(c.Creds))
	}
	if c.CA != "" {
		opts = append(opts, nats.RootCAs(c.CA))
	}
	if c.Cert != "" {
		opts = append(opts, nats.ClientCert(c.Cert, c.Key))
	}
	return append(opts, extra...)
}

// Connect connects to c.URL with c.Options. Because it retries a failed
// first connect in the background, it returns a connection that may not be
// connected yet; callers watch nc.IsConnected (readiness).
func (c Config) Connect(log *slog.Logger, onErr func(error), extra ...nats.Option) (*nats.Conn, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	nc, err := nats.Connect(c.URL, c.Options(log, onErr, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("nats connect %s: %w", redactURLs(c.URL), err)
	}
	return nc, nil
}

// Drain drains nc (its subscriptions finish the messages they hold, pending
// publishes are flushed) and waits until it is closed or ctx ends, when it
// closes nc at once. A connection already closed is not an error.
func Drain(ctx context.Context, nc *nats.Conn) error {
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		if errors.Is(err, nats.ErrConnectionClosed) {
			return nil
		}
		return fmt.Errorf("nats drain: %w", err)
	}
	select {
	case <-closed:
		return nil
	case <-ctx.Done():
		nc.Close()
		return fmt.Errorf("nats drain: %w", ctx.Err())
	}
}
