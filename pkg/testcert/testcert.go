// Package testcert writes a throwaway certificate authority and a server
// certificate for the loopback addresses, so tests can run NATS (or HTTP)
// over TLS without any files checked into the repository.
package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// New creates a fresh ECDSA P-256 CA and a server certificate signed by it,
// valid for 127.0.0.1, ::1 and localhost for one day, and writes them as PEM
// files into dir: ca.pem, server.pem and server-key.pem (mode 0600). It
// returns the three paths and fails tb on any error. Every call makes a new
// CA, so certificates from two calls do not trust each other.
func New(tb testing.TB, dir string) (caFile, certFile, keyFile string) {
	tb.Helper()

	now := time.Now()
	caKey := newKey(tb)
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(tb),
		Subject:               pkix.Name{CommonName: "vision test CA", Organization: []string{"visionmesh test"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		tb.Fatalf("testcert: create CA: %v", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		tb.Fatalf("testcert: parse CA: %v", err)
	}

	srvKey := newKey(tb)
	srvTmpl := &x509.Certificate{
		SerialNumber: serial(tb),
		Subject:      pkix.Name{CommonName: "127.0.0.1", Organization: []string{"visionmesh test"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:     []string{"localhost"},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		tb.Fatalf("testcert: create server certificate: %v", err)
	}
	srvKeyDER, err := x509.MarshalPKCS8PrivateKey(srvKey)
	if err != nil {
		tb.Fatalf("testcert: marshal server key: %v", err)
	}

	caFile = filepath.Join(dir, "ca.pem")
	certFile = filepath.Join(dir, "server.pem")
	keyFile = filepath.Join(dir, "server-key.pem")
	writePEM(tb, caFile, "CERTIFICATE", caDER, 0o644)
	writePEM(tb, certFile, "CERTIFICATE", srvDER, 0o644)
	writePEM(tb, keyFile, "PRIVATE KEY", srvKeyDER, 0o600)
	return caFile, certFile, keyFile
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("testcert: generate key: %v", err)
	}
	return k
}

// serial returns a random 128-bit serial number, as RFC 5280 recommends.
func serial(tb testing.TB) *big.Int {
	tb.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		tb.Fatalf("testcert: serial number: %v", err)
	}
	return n
}

func writePEM(tb testing.TB, path, typ string, der []byte, mode os.FileMode) {
	tb.Helper()
	data := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(path, data, mode); err != nil {
		tb.Fatalf("testcert: write %s: %v", path, err)
	}
}
