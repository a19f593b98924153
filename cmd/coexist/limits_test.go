package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
)

// rawAnswer writes head on a new connection to addr and reads the answer;
// the connection stays open (closed at the test's end) unless the server
// closes it.
func rawAnswer(t *testing.T, addr, head string) (*http.Response, net.Conn, error) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	if head != "" {
		io.WriteString(nc, head)
	}
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return resp, nc, err
}

// fillUntilRefused opens connections to addr, each with one call of head,
// until one is answered 503 at once; it returns how many it held before.
func fillUntilRefused(t *testing.T, addr, head string, most int) (held []net.Conn) {
	t.Helper()
	for range most {
		resp, nc, err := rawAnswer(t, addr, head)
		if err != nil {
			t.Fatalf("after %d connections: %v; want an answer", len(held), err)
		}
		if resp.StatusCode == http.StatusServiceUnavailable {
			nc.Close()
			return held
		}
		held = append(held, nc)
	}
	t.Fatalf("%d connections open and none refused", most)
	return nil
}

// TestListenerLimits runs a real server and agent with small caps of
// connections: over its cap each answers 503 at once, and serves again
// once connections close; the server refuses a head over its size; the
// gateway's /v1/metrics answers only a token the registry knows.
func TestListenerLimits(t *testing.T) {
	skipShort(t)
	dir := t.TempDir()
	s := &serverProc{proc: newProc("s1"), httpAddr: freeAddr(t), raftAddr: freeAddr(t), dataDir: filepath.Join(dir, "s1")}
	t.Cleanup(s.kill)
	s.start(t, "--bootstrap", "--max-conns", "16")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- log of s1:\n%s", s.logs())
		}
	})
	// One client: each holds its idle connections, which count.
	c := s.client(t)
	waitFor(t, 20*time.Second, "the server to lead", func() bool {
		l, _, err := c.Status().Leader(context.Background(), nil)
		return err == nil && l.ID == "s1"
	})

	leader := "GET /v1/status/leader HTTP/1.1\r\nHost: r\r\n\r\n"
	resp, _, err := rawAnswer(t, s.httpAddr, "GET /v1/status/leader HTTP/1.1\r\nHost: r\r\nX-Big: "+strings.Repeat("a", 64<<10)+"\r\n\r\n")
	if err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a 64 KiB head: %v %v; want 431", resp, err)
	}
	held := fillUntilRefused(t, s.httpAddr, leader, 40)
	if len(held) > 16 {
		t.Errorf("server held %d connections over its cap of 16", len(held))
	}
	for _, nc := range held {
		nc.Close()
	}
	waitFor(t, 10*time.Second, "the server to answer again", func() bool {
		resp, nc, err := rawAnswer(t, s.httpAddr, leader)
		nc.Close()
		return err == nil && resp.StatusCode == http.StatusOK
	})

	f := &fleet{t: t, server: s, api: c, agents: map[string]*agentProc{}}
	a := f.startAgent("n1", "--gateway-max-conns", "4")
	t.Cleanup(func() {
		a.kill()
		if t.Failed() {
			t.Logf("--- log of agent n1:\n%s", a.logs())
		}
	})
	metrics := func(auth string) string {
		return "GET /v1/metrics HTTP/1.1\r\nHost: gw\r\n" + auth + "\r\n"
	}
	for _, tt := range []struct {
		auth string
		code int
	}{
		{"", http.StatusUnauthorized},
		{"Authorization: Bearer not-a-token-of-the-registry\r\n", http.StatusUnauthorized},
		{"Authorization: Bearer " + testToken + "\r\n", http.StatusOK},
	} {
		resp, nc, err := rawAnswer(t, a.gateway, metrics(tt.auth))
		nc.Close()
		if err != nil || resp.StatusCode != tt.code {
			t.Errorf("gateway metrics with %q: %v %v; want %d", tt.auth, resp, err, tt.code)
		}
	}

	held = fillUntilRefused(t, a.gateway, metrics("Authorization: Bearer "+testToken+"\r\n"), 20)
	if len(held) != 4 {
		t.Errorf("gateway held %d connections, want its cap of 4", len(held))
	}
	resp, nc, err := rawAnswer(t, a.gateway, "")
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get(api.HeaderRetry) != "safe" {
		t.Errorf("a connection over the gateway's cap: %v %v; want 503 safe to retry", resp, err)
	}
	nc.Close()
	for _, nc := range held {
		nc.Close()
	}
	waitFor(t, 10*time.Second, "the gateway to answer again", func() bool {
		resp, nc, err := rawAnswer(t, a.gateway, metrics("Authorization: Bearer "+testToken+"\r\n"))
		nc.Close()
		return err == nil && resp.StatusCode == http.StatusOK
	})
}
