package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coexist-dev/coexist/api"
)

// coexistCluster is three `coexist server` processes on loopback.
type coexistCluster struct {
	bin    string
	dir    string
	token  string
	procs  []*proc
	urls   []string      // HTTP API of each server
	ids    []string      // node ids
	client []*api.Client // one per server, sharing the writers' http.Client

	leader atomic.Int32 // index of the leader in urls
	retry  retryStats
}

func startCoexist(ctx context.Context, bin, dir string, hc *http.Client) (*coexistCluster, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		c, err := tryStartCoexist(ctx, bin, filepath.Join(dir, fmt.Sprintf("coexist-%d", attempt)), hc)
		if err == nil {
			return c, nil
		}
		lastErr = err
		if c != nil {
			c.stop()
		}
		if !errors.Is(err, errPortConflict) || ctx.Err() != nil {
			break
		}
		fmt.Fprintf(os.Stderr, "coexist: a port was taken, retrying with others\n")
	}
	return nil, lastErr
}

var errPortConflict = errors.New("port conflict")

func tryStartCoexist(ctx context.Context, bin, dir string, hc *http.Client) (*coexistCluster, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ports, err := freePorts(6)
	if err != nil {
		return nil, err
	}
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	c := &coexistCluster{bin: bin, dir: dir, token: hex.EncodeToString(tok)}
	for i := 0; i < 3; i++ {
		u := fmt.Sprintf("http://127.0.0.1:%d", ports[2*i])
		c.urls = append(c.urls, u)
		c.ids = append(c.ids, fmt.Sprintf("c%d", i+1))
		cl, err := api.NewClient(&api.Config{Address: u, Token: c.token, HTTPClient: hc})
		if err != nil {
			return nil, err
		}
		c.client = append(c.client, cl)
	}
	startOne := func(i int) error {
		args := []string{"server",
			"--node-id", c.ids[i],
			"--http-addr", fmt.Sprintf("127.0.0.1:%d", ports[2*i]),
			"--raft-addr", fmt.Sprintf("127.0.0.1:%d", ports[2*i+1]),
			"--data-dir", filepath.Join(dir, c.ids[i]),
			"--management-token", c.token,
		}
		if i == 0 {
			args = append(args, "--bootstrap")
		} else {
			args = append(args, "--join", c.urls[0])
		}
		p, err := startProc("coexist "+c.ids[i], filepath.Join(dir, c.ids[i]+".log"), bin, args...)
		if err != nil {
			return err
		}
		c.procs = append(c.procs, p)
		return nil
	}
	deadline, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	// The first server alone, until it leads; then the two others join it.
	if err := startOne(0); err != nil {
		return c, err
	}
	if err := c.waitFor(deadline, "server c1 to lead", func() error {
		l, _, err := c.client[0].Status().Leader(deadline, nil)
		if err != nil {
			return err
		}
		if l.ID != "c1" {
			return fmt.Errorf("leader is %q", l.ID)
		}
		return nil
	}); err != nil {
		return c, err
	}
	for i := 1; i < 3; i++ {
		if err := startOne(i); err != nil {
			return c, err
		}
	}
	if err := c.waitFor(deadline, "3 voters and one leader seen by every server", func() error {
		var leader string
		for i, cl := range c.client {
			l, _, err := cl.Status().Leader(deadline, nil)
			if err != nil {
				return fmt.Errorf("%s: %w", c.ids[i], err)
			}
			if leader != "" && l.ID != leader {
				return fmt.Errorf("servers disagree on the leader: %s and %s", leader, l.ID)
			}
			leader = l.ID
			peers, _, err := cl.Status().Peers(deadline, nil)
			if err != nil {
				return fmt.Errorf("%s: %w", c.ids[i], err)
			}
			voters := 0
			for _, p := range peers {
				if p.Suffrage == "" || strings.EqualFold(p.Suffrage, "voter") {
					voters++
				}
			}
			if voters != 3 {
				return fmt.Errorf("%s lists %d voters: %+v", c.ids[i], voters, peers)
			}
		}
		return nil
	}); err != nil {
		return c, err
	}
	if err := c.findLeader(deadline); err != nil {
		return c, err
	}
	// One write, seen by every server: the cluster is ready.
	idx, err := c.write(deadline, "bench-ready", "1.0.0")
	if err != nil {
		return c, fmt.Errorf("first write: %w", err)
	}
	if err := c.waitFor(deadline, "every server to apply the first write", func() error {
		for i, cl := range c.client {
			_, qm, err := cl.Services().List(deadline, &api.QueryOptions{AllowStale: true})
			if err != nil {
				return err
			}
			if qm.LastIndex < idx {
				return fmt.Errorf("%s at index %d < %d", c.ids[i], qm.LastIndex, idx)
			}
		}
		return nil
	}); err != nil {
		return c, err
	}
	return c, nil
}

func (c *coexistCluster) waitFor(ctx context.Context, what string, check func() error) error {
	return waitProcs(ctx, "coexist", what, c.procs, check)
}

func (c *coexistCluster) findLeader(ctx context.Context) error {
	l, _, err := c.client[0].Status().Leader(ctx, nil)
	if err != nil {
		return err
	}
	for i, id := range c.ids {
		if id == l.ID {
			c.leader.Store(int32(i))
			return nil
		}
	}
	return fmt.Errorf("leader %q is not one of ours", l.ID)
}

func (c *coexistCluster) stop() { stopAll(c.procs, 10*time.Second) }

func (c *coexistCluster) name() string { return "coexist" }

func (c *coexistCluster) describe() string {
	l := c.leader.Load()
	return fmt.Sprintf("3 servers, leader %s (%s)", c.ids[l], c.urls[l])
}

func (c *coexistCluster) retries() *retryStats { return &c.retry }

func (c *coexistCluster) processes() []*proc { return c.procs }

// write declares one version, on the leader. A retryable failure (no
// leader, connection cut) is retried, after looking for the leader again,
// until ctx ends; the latency then includes the retries, as a client sees it.
func (c *coexistCluster) write(ctx context.Context, service, version string) (uint64, error) {
	for {
		l := c.leader.Load()
		_, wm, err := c.client[l].Services().Declare(ctx, service, version, api.VersionRequest{Clients: ">= 1.0"}, nil)
		if err == nil {
			if wm.LastIndex == 0 {
				return 0, errors.New("write answered without " + api.HeaderIndex)
			}
			return wm.LastIndex, nil
		}
		if !api.IsRetryable(err) || ctx.Err() != nil {
			return 0, err
		}
		c.retry.note(err)
		sleepCtx(ctx, 50*time.Millisecond)
		c.refreshLeader(ctx, l)
	}
}

// refreshLeader asks the servers for the leader, after a write to the
// server at index was refused.
func (c *coexistCluster) refreshLeader(ctx context.Context, was int32) {
	for _, cl := range c.client {
		lctx, cancel := context.WithTimeout(ctx, time.Second)
		l, _, err := cl.Status().Leader(lctx, nil)
		cancel()
		if err != nil {
			continue
		}
		for i, id := range c.ids {
			if id == l.ID {
				if c.leader.CompareAndSwap(was, int32(i)) && int32(i) != was {
					c.retry.leaderChanges.Add(1)
				}
				return
			}
		}
	}
}

func (c *coexistCluster) Write(ctx context.Context, phase string, w, i int) (uint64, error) {
	return c.write(ctx, fmt.Sprintf("bench-%s-%d", phase, w), fmt.Sprintf("1.0.%d", i))
}

// WaitInForce waits until the change at index is in force by the leader's
// census (GET /v1/census/in-force), asking again after a wait that ends
// without it.
func (c *coexistCluster) WaitInForce(ctx context.Context, index uint64) error {
	for {
		f, err := c.client[c.leader.Load()].Census().InForce(ctx, index, 10*time.Second)
		if err != nil {
			return err
		}
		if f.InForce {
			return nil
		}
	}
}

func (c *coexistCluster) FanoutWrite(ctx context.Context, round int) (uint64, error) {
	svc, ver := fanoutKey(round)
	return c.write(ctx, svc, ver)
}

// coexistWatchers are n goroutines, each a loop of blocking queries.
type coexistWatchers struct {
	watchers
	answers   atomic.Int64
	lastBytes atomic.Int64
}

// StartWatchers starts n watchers of GET path. stale: ?stale, spread evenly
// over the three servers; otherwise the default mode, every watcher on the
// leader (a follower would forward them there anyway).
func (c *coexistCluster) StartWatchers(ctx context.Context, hc *http.Client, n int, path string, stale bool, seen func(i int, idx uint64)) (*coexistWatchers, error) {
	wctx, cancel := context.WithCancel(ctx)
	cw := &coexistWatchers{watchers: watchers{cancel: cancel}}
	var ready sync.WaitGroup
	ready.Add(n)
	for i := 0; i < n; i++ {
		base := c.urls[c.leader.Load()]
		if stale {
			base = c.urls[i%len(c.urls)]
		}
		cw.wg.Add(1)
		go func() {
			defer cw.wg.Done()
			cw.loop(wctx, hc, base+path, stale, c.token, "bench-"+strconv.Itoa(i), func(idx uint64) { seen(i, idx) }, ready.Done)
		}()
	}
	if err := cw.waitReady(ctx, &ready, "coexist: watchers not all answered"); err != nil {
		return nil, err
	}
	return cw, nil
}

// loop is one watcher. It reads each answer to its end (so that the
// connection is reused) but does not decode it: the header carries the index.
// It says who it is as an SDK client does (instance, client name and
// version), so that the registry's census counts it and a change is in
// force only once it has asked with the change's index.
func (cw *coexistWatchers) loop(ctx context.Context, hc *http.Client, url string, stale bool, token, instance string, seen func(uint64), ready func()) {
	var idx uint64
	first := true
	for ctx.Err() == nil {
		q := "?wait=30s"
		if idx > 0 {
			q += "&index=" + strconv.FormatUint(idx, 10)
		}
		if stale {
			q += "&stale"
		}
		rctx, cancel := context.WithTimeout(ctx, 45*time.Second)
		req, _ := http.NewRequestWithContext(rctx, http.MethodGet, url+q, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set(api.HeaderInstance, instance)
		req.Header.Set(api.HeaderClient, "bench")
		req.Header.Set(api.HeaderClientVersion, "1.0.0")
		resp, err := hc.Do(req)
		if err != nil {
			cancel()
			if ctx.Err() == nil {
				cw.fail(err)
				sleepCtx(ctx, 100*time.Millisecond)
			}
			continue
		}
		nb, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				cw.fail(fmt.Errorf("read answer: %w", err))
				sleepCtx(ctx, 100*time.Millisecond)
			}
			continue
		}
		if resp.StatusCode != http.StatusOK {
			cw.fail(fmt.Errorf("GET %s: %s", url+q, resp.Status))
			sleepCtx(ctx, 100*time.Millisecond)
			continue
		}
		n, err := strconv.ParseUint(resp.Header.Get(api.HeaderIndex), 10, 64)
		if err != nil {
			cw.fail(fmt.Errorf("bad %s %q", api.HeaderIndex, resp.Header.Get(api.HeaderIndex)))
			sleepCtx(ctx, 100*time.Millisecond)
			continue
		}
		cw.answers.Add(1)
		cw.lastBytes.Store(nb)
		seen(n)
		idx = n
		if first {
			first = false
			ready()
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
