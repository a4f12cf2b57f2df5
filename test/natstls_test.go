package test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/visionmesh/vision/pkg/testcert"
)

// natsConfWithTLS writes a copy of nats.conf into dir with its commented
// TLS block (between "# BEGIN tls" and "# END tls") switched on, and
// returns its path. Testing the block as it stands in the file keeps the
// documented way of enabling TLS working.
func natsConfWithTLS(tb testing.TB, dir string) string {
	tb.Helper()
	data, err := os.ReadFile(natsConfPath)
	if err != nil {
		tb.Fatalf("read %s: %v", natsConfPath, err)
	}
	lines := strings.Split(string(data), "\n")
	in, found := false, false
	for i, line := range lines {
		switch strings.TrimSpace(line) {
		case "# BEGIN tls":
			in, found = true, true
			continue
		case "# END tls":
			in = false
			continue
		}
		if in {
			rest, ok := strings.CutPrefix(line, "# ")
			if !ok && line != "#" {
				tb.Fatalf("%s:%d: line in the TLS block is not commented with \"# \": %q", natsConfPath, i+1, line)
			}
			lines[i] = rest
		}
	}
	if !found || in {
		tb.Fatalf("%s: no complete \"# BEGIN tls\" ... \"# END tls\" block", natsConfPath)
	}
	path := filepath.Join(dir, "nats-tls.conf")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		tb.Fatalf("write %s: %v", path, err)
	}
	return path
}

// TestNatsTLS enables the TLS block of nats.conf with a throwaway CA and
// proves that a client trusting that CA connects (and still needs its
// password), while clients that do not trust it, or do not speak TLS, are
// refused.
func TestNatsTLS(t *testing.T) {
	dir := t.TempDir()
	caFile, certFile, keyFile := testcert.New(t, dir)
	otherCA, _, _ := testcert.New(t, t.TempDir())
	t.Setenv("NATS_SERVER_CERT", certFile)
	t.Setenv("NATS_SERVER_KEY", keyFile)
	t.Setenv("NATS_SERVER_CA", caFile)
	pw := setNatsConfSecrets(t)

	opts := loadNatsConf(t, natsConfWithTLS(t, dir))
	if opts.TLSConfig == nil {
		t.Fatal("TLS block did not enable TLS")
	}
	url := startNatsConfServer(t, opts)
	tlsURL := strings.Replace(url, "nats://", "tls://", 1)

	pool := x509.NewCertPool()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", caFile)
	}

	t.Run("trusted", func(t *testing.T) {
		cases := []struct {
			name string
			url  string
			opt  nats.Option
		}{
			{"RootCAs", tlsURL, nats.RootCAs(caFile)},
			{"Secure with pool", tlsURL, nats.Secure(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})},
			// The server's INFO requires TLS, so nats:// upgrades too.
			{"nats scheme", url, nats.RootCAs(caFile)},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				nc, _ := dialNatsConf(t, tc.url, "orchestrator", pw["orchestrator"], tc.opt, nats.CustomInboxPrefix(natsConfOrchInbox))
				flushNatsConf(t, nc)
				state, err := nc.TLSConnectionState()
				if err != nil {
					t.Fatalf("TLS state: %v", err)
				}
				if !state.HandshakeComplete || len(state.VerifiedChains) == 0 {
					t.Errorf("handshake complete %v, %d verified chains; want a verified TLS connection", state.HandshakeComplete, len(state.VerifiedChains))
				}
			})
		}
	})

	t.Run("trusted and a job round trip", func(t *testing.T) {
		w, _ := dialNatsConf(t, tlsURL, "worker-vehicle", pw["worker-vehicle"], nats.RootCAs(caFile))
		serveNatsConfTask(t, w, "vehicle")
		orch, _ := dialNatsConf(t, tlsURL, "orchestrator", pw["orchestrator"], nats.RootCAs(caFile), nats.CustomInboxPrefix(natsConfOrchInbox))
		m, err := orch.Request(natsConfSubject("vehicle"), []byte("jpeg"), 5*time.Second)
		if err != nil {
			t.Fatalf("request: %v", err)
		}
		if got, want := string(m.Data), "done:vehicle"; got != want {
			t.Errorf("reply %q, want %q", got, want)
		}
	})

	t.Run("refused", func(t *testing.T) {
		cases := []struct {
			name    string
			url     string
			opts    []nats.Option
			wantErr func(error) bool
		}{
			{
				name: "without the CA",
				url:  tlsURL,
				opts: []nats.Option{nats.UserInfo("orchestrator", pw["orchestrator"])},
				wantErr: func(err error) bool {
					var ua x509.UnknownAuthorityError
					return errors.As(err, &ua)
				},
			},
			{
				name: "another CA",
				url:  tlsURL,
				opts: []nats.Option{nats.UserInfo("orchestrator", pw["orchestrator"]), nats.RootCAs(otherCA)},
				wantErr: func(err error) bool {
					var ua x509.UnknownAuthorityError
					return errors.As(err, &ua)
				},
			},
			{
				name: "plain nats scheme without the CA",
				url:  url,
				opts: []nats.Option{nats.UserInfo("orchestrator", pw["orchestrator"])},
				wantErr: func(err error) bool {
					var ua x509.UnknownAuthorityError
					return errors.As(err, &ua)
				},
			},
			{
				name:    "the CA but no credentials",
				url:     tlsURL,
				opts:    []nats.Option{nats.RootCAs(caFile)},
				wantErr: func(err error) bool { return errors.Is(err, nats.ErrAuthorization) },
			},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				opts := append([]nats.Option{nats.NoReconnect(), nats.Timeout(5 * time.Second)}, tc.opts...)
				nc, err := nats.Connect(tc.url, opts...)
				if err == nil {
					nc.Close()
					t.Fatal("connection accepted")
				}
				if !tc.wantErr(err) {
					t.Errorf("got error %v (%T), want a different kind", err, err)
				}
			})
		}
	})
}
