package test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// natsConfPath is the production server configuration, relative to test/.
const natsConfPath = "../nats.conf"

// natsConfSecretEnv names, for every user in nats.conf, the environment
// variable its password is read from.
var natsConfSecretEnv = map[string]string{
	"orchestrator":   "NATS_ORCHESTRATOR_PASSWORD",
	"worker-vehicle": "NATS_WORKER_VEHICLE_PASSWORD",
	"worker-plate":   "NATS_WORKER_PLATE_PASSWORD",
	"worker-face":    "NATS_WORKER_FACE_PASSWORD",
}

// eventually calls fn every 10ms until it returns nil and fails tb with fn's
// last error if that has not happened within timeout.
func eventually(tb testing.TB, timeout time.Duration, fn func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("still failing after %v: %v", timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// setNatsConfSecrets puts a fresh random password for every nats.conf user
// into the environment for the duration of the test and returns them by
// user name. The passwords have the shape docs/security.md recommends
// (openssl rand -hex 32).
func setNatsConfSecrets(tb testing.TB) map[string]string {
	tb.Helper()
	pw := make(map[string]string, len(natsConfSecretEnv))
	for user, env := range natsConfSecretEnv {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			tb.Fatalf("random password: %v", err)
		}
		pw[user] = hex.EncodeToString(b)
		tb.Setenv(env, pw[user])
	}
	return pw
}

// loadNatsConf loads the server configuration at path the way nats-server
// does and moves its listeners to where a test may use them: clients on a
// random 127.0.0.1 port, monitoring off, JetStream storage in a temporary
// directory. Everything else (limits, authorization, TLS) is the file's.
func loadNatsConf(tb testing.TB, path string) *server.Options {
	tb.Helper()
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		tb.Fatalf("load %s: %v", path, err)
	}
	opts.Host = "127.0.0.1"
	opts.Port = -1
	opts.HTTPHost = "127.0.0.1"
	opts.HTTPPort = 0 // monitoring disabled
	opts.NoSigs = true
	opts.NoLog = true
	if opts.JetStream {
		opts.StoreDir = tb.TempDir() // not the file's /data/jetstream
	}
	return opts
}

// startNatsConfServer runs an embedded server with opts, waits until it
// accepts connections, shuts it down when the test ends and returns its
// client URL.
func startNatsConfServer(tb testing.TB, opts *server.Options) string {
	tb.Helper()
	s, err := server.NewServer(opts)
	if err != nil {
		tb.Fatalf("new nats server: %v", err)
	}
	go s.Start()
	tb.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	if !s.ReadyForConnections(10 * time.Second) {
		tb.Fatalf("nats server not ready after 10s")
	}
	return s.ClientURL()
}

// newNatsConfServer sets the secrets, starts a server with the real
// nats.conf and returns its URL and the passwords by user name.
func newNatsConfServer(tb testing.TB) (url string, passwords map[string]string) {
	tb.Helper()
	passwords = setNatsConfSecrets(tb)
	return startNatsConfServer(tb, loadNatsConf(tb, natsConfPath)), passwords
}

// natsConfErrs records the asynchronous errors of one connection (those the
// server reports with -ERR without closing it, such as permission
// violations).
type natsConfErrs struct {
	mu   sync.Mutex
	errs []error
}

func (a *natsConfErrs) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.errs = append(a.errs, err)
}

func (a *natsConfErrs) all() []error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]error(nil), a.errs...)
}

// violation returns nil once a permissions violation naming subject (quoted,
// as the server words it: `Publish to "x"` or `Subscription to "x"`) has
// been reported, and an error saying what was seen so far otherwise.
func (a *natsConfErrs) violation(op, subject string) error {
	want := fmt.Sprintf("%s to %q", op, subject)
	errs := a.all()
	for _, err := range errs {
		if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), want) {
			return nil
		}
	}
	return fmt.Errorf("no permissions violation for %s among %v", want, errs)
}

// dialNatsConf connects to url as user with password, fails the test if
// that is refused, and closes the connection when the test ends. Its
// asynchronous errors are recorded in the returned natsConfErrs.
func dialNatsConf(tb testing.TB, url, user, password string, extra ...nats.Option) (*nats.Conn, *natsConfErrs) {
	tb.Helper()
	errs := &natsConfErrs{}
	opts := append([]nats.Option{
		nats.Name("natsconf-test-" + user),
		nats.UserInfo(user, password),
		nats.Timeout(5 * time.Second),
		nats.NoReconnect(),
		nats.ErrorHandler(errs.handler),
	}, extra...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		tb.Fatalf("connect as %s: %v", user, err)
	}
	tb.Cleanup(nc.Close)
	return nc, errs
}

// flushNatsConf makes a round trip to the server, so that everything nc sent
// before has been processed by the server and every -ERR it caused has been
// read by nc.
func flushNatsConf(tb testing.TB, nc *nats.Conn) {
	tb.Helper()
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		tb.Fatalf("flush: %v", err)
	}
}
