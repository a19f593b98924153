package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
)

const testToken = "test-management-token-0123456789"

// proc is one real `coexist` process: this test binary, acting as the
// coexist binary (TestMain), with its output kept for failure reports.
type proc struct {
	id    string
	cmd   *exec.Cmd
	log   *bytes.Buffer
	logMu *sync.Mutex
}

func newProc(id string) proc { return proc{id: id, log: &bytes.Buffer{}, logMu: &sync.Mutex{}} }

// run starts `coexist args...`.
func (p *proc) run(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "COEXIST_TEST_MAIN=1")
	w := lockedWriter{p.logMu, p.log}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.cmd = cmd
}

func (p *proc) kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_ = p.cmd.Wait()
		p.cmd = nil
	}
}

func (p *proc) logs() string {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	return p.log.String()
}

// serverProc is one real `coexist server` process.
type serverProc struct {
	proc
	httpAddr, raftAddr, dataDir string
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (p *serverProc) start(t *testing.T, extra ...string) {
	t.Helper()
	p.run(t, append([]string{"server", "--node-id", p.id, "--http-addr", p.httpAddr, "--raft-addr", p.raftAddr,
		"--data-dir", p.dataDir, "--management-token", testToken, "--log-level", "info"}, extra...)...)
}

func (p *serverProc) url() string { return "http://" + p.httpAddr }

func (p *serverProc) client(t *testing.T) *api.Client {
	c, err := api.NewClient(&api.Config{Address: p.url(), Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startCluster starts n real servers, the first with --bootstrap and the
// others with --join, each with the extra flags.
func startCluster(t *testing.T, n int, extra ...string) []*serverProc {
	t.Helper()
	dir := t.TempDir()
	var procs []*serverProc
	for i := range n {
		id := fmt.Sprintf("s%d", i+1)
		p := &serverProc{proc: newProc(id), httpAddr: freeAddr(t), raftAddr: freeAddr(t), dataDir: filepath.Join(dir, id)}
		procs = append(procs, p)
		t.Cleanup(p.kill)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range procs {
				t.Logf("--- log of %s:\n%s", p.id, p.logs())
			}
		}
	})
	procs[0].start(t, append([]string{"--bootstrap"}, extra...)...)
	waitFor(t, 20*time.Second, "the first server to lead", func() bool {
		l, _, err := procs[0].client(t).Status().Leader(context.Background(), nil)
		return err == nil && l.ID == "s1"
	})
	for _, p := range procs[1:] {
		p.start(t, append([]string{"--join", procs[0].url()}, extra...)...)
	}
	waitFor(t, 20*time.Second, "all servers to join", func() bool {
		peers, _, err := procs[0].client(t).Status().Peers(context.Background(), nil)
		return err == nil && len(peers) == n
	})
	return procs
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", d, what)
}

func leaderOf(t *testing.T, procs []*serverProc) *serverProc {
	t.Helper()
	var leader *serverProc
	waitFor(t, 20*time.Second, "a leader", func() bool {
		for _, p := range procs {
			if p.cmd == nil {
				continue
			}
			l, _, err := p.client(t).Status().Leader(context.Background(), nil)
			if err != nil {
				continue
			}
			for _, q := range procs {
				if q.id == l.ID && q.cmd != nil {
					leader = q
					return true
				}
			}
		}
		return false
	})
	return leader
}

// TestClusterSurvivesLeaderKill runs three real server processes under
// concurrent writers, kills the leader with SIGKILL mid-load, and checks that
// writes resume, that the killed server catches up after a restart from its
// data dir, and that every acknowledged write is on all three, written once.
func TestClusterSurvivesLeaderKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real server processes")
	}
	procs := startCluster(t, 3)

	type ack struct {
		key         string
		createIndex uint64
	}
	var (
		mu         sync.Mutex
		acked      = map[string]ack{}
		ambiguous  = map[string]bool{}
		afterKill  atomic.Int64
		killed     atomic.Bool
		stop       = make(chan struct{})
		wg         sync.WaitGroup
		writers    = 8
		perWriter  = 60
		clientsFor = func(i int) *api.Client { return procs[i%len(procs)].client(t) }
	)
	for w := range writers {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			target := w
			// Failed writes (during the election) do not count: each writer
			// goes on until perWriter of its writes were acknowledged.
			mine := 0
			for i := 0; mine < perWriter; i++ {
				select {
				case <-stop:
					return
				default:
				}
				version := fmt.Sprintf("1.%d.%d", w, i)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				v, _, err := clientsFor(target).Services().Declare(ctx, "load", version, api.VersionRequest{Clients: ">= 1.0"}, nil)
				cancel()
				mu.Lock()
				if err != nil {
					// Unknown outcome: it may or may not have been applied.
					ambiguous[version] = true
					mu.Unlock()
					target++ // try another server next
					time.Sleep(50 * time.Millisecond)
					continue
				}
				acked[version] = ack{key: version, createIndex: v.CreateIndex}
				mu.Unlock()
				mine++
				if killed.Load() {
					afterKill.Add(1)
				}
			}
		}(w)
	}

	// Kill the leader once the load is under way.
	waitFor(t, 20*time.Second, "writes before the kill", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 40
	})
	old := leaderOf(t, procs)
	old.kill()
	killed.Store(true)
	t.Logf("killed leader %s", old.id)
	waitFor(t, 30*time.Second, "writes through a new leader", func() bool { return afterKill.Load() >= 20 })
	newLeader := leaderOf(t, procs)
	if newLeader == old {
		t.Fatal("the killed server is still the leader")
	}
	close(stop)
	wg.Wait()

	// Restart the killed server from its data dir; its flags are ignored.
	old.start(t, "--bootstrap")
	final, _, err := newLeader.client(t).Services().Info(context.Background(), "load", &api.QueryOptions{RequireConsistent: true})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]api.ServiceVersion{}
	for _, v := range final.Versions {
		want[v.Version] = v
	}
	for _, p := range procs {
		waitFor(t, 30*time.Second, p.id+" to catch up", func() bool {
			svc, _, err := p.client(t).Services().Info(context.Background(), "load", &api.QueryOptions{AllowStale: true})
			return err == nil && len(svc.Versions) == len(want)
		})
		svc, _, err := p.client(t).Services().Info(context.Background(), "load", &api.QueryOptions{AllowStale: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range svc.Versions {
			w := want[v.Version]
			if v.CreateIndex != w.CreateIndex || v.ModifyIndex != w.ModifyIndex {
				t.Fatalf("%s: %s differs from the leader: %+v vs %+v", p.id, v.Version, v, w)
			}
			if v.CreateIndex != v.ModifyIndex {
				t.Fatalf("%s: %s was written more than once (create %d, modify %d)", p.id, v.Version, v.CreateIndex, v.ModifyIndex)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for k, a := range acked {
		got, ok := want[k]
		if !ok {
			t.Fatalf("acknowledged write %s is lost", k)
		}
		if got.CreateIndex != a.createIndex {
			t.Fatalf("acknowledged write %s was applied again: index %d, acknowledged at %d", k, got.CreateIndex, a.createIndex)
		}
	}
	for k := range want {
		if _, ok := acked[k]; !ok && !ambiguous[k] {
			t.Fatalf("write %s is present but was never attempted", k)
		}
	}
	t.Logf("%d acknowledged writes (%d after the kill), %d with unknown outcome, %d stored", len(acked), afterKill.Load(), len(ambiguous), len(want))
}
