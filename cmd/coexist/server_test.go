package main

import (
	"context"
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
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
)

// TestSIGTERMOnLeaderHandsOverLeadership stops the leader of a real
// three-server cluster with SIGTERM: it exits 0, and the others have a new
// leader that takes writes.
func TestSIGTERMOnLeaderHandsOverLeadership(t *testing.T) {
	skipShort(t)
	procs := startCluster(t, 3)
	old := leaderOf(t, procs)
	if err := old.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := old.cmd.Wait(); err != nil {
		t.Fatalf("leader did not exit cleanly on SIGTERM: %v", err)
	}
	old.cmd = nil
	if !strings.Contains(old.logs(), "transferring leadership before shutdown") {
		t.Fatalf("no leadership transfer in the log:\n%s", old.logs())
	}
	next := leaderOf(t, procs)
	if _, _, err := next.client(t).Services().Declare(context.Background(), "after", "1.0.0", api.VersionRequest{Clients: ">= 0"}, nil); err != nil {
		t.Fatalf("write through the new leader: %v", err)
	}
}

// TestServerTLS runs a server with --tls-cert and --tls-key and talks to it
// over https, verifying it with the CA.
func TestServerTLS(t *testing.T) {
	skipShort(t)
	dir := t.TempDir()
	caFile, certFile, keyFile := writeTestCerts(t, dir)
	p := &serverProc{proc: newProc("s1"), httpAddr: freeAddr(t), raftAddr: freeAddr(t), dataDir: filepath.Join(dir, "data")}
	t.Cleanup(p.kill)
	p.start(t, "--bootstrap", "--tls-cert", certFile, "--tls-key", keyFile)
	c, err := api.NewClient(&api.Config{Address: "https://" + p.httpAddr, Token: testToken, TLS: api.TLSConfig{CAFile: caFile}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the TLS server to lead", func() bool {
		_, _, err := c.Status().Leader(context.Background(), nil)
		return err == nil
	})
	if _, _, err := c.Services().Declare(context.Background(), "tls", "1.0.0", api.VersionRequest{Clients: ">= 0"}, nil); err != nil {
		t.Fatalf("write over https: %v", err)
	}
	plain, _ := api.NewClient(&api.Config{Address: "https://" + p.httpAddr, Token: testToken})
	if _, _, err := plain.Services().List(context.Background(), nil); err == nil {
		t.Fatal("a client without the CA trusted the server")
	}
}

// writeTestCerts writes a CA and a server certificate for 127.0.0.1 signed
// by it.
func writeTestCerts(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "coexist test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "coexist server"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	write := func(name, typ string, b []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("server.pem", "CERTIFICATE", der), write("server-key.pem", "EC PRIVATE KEY", keyDER)
}
