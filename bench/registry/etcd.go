package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
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
)

// etcdCluster is a 3-member etcd cluster on loopback, driven over its
// HTTP/JSON gRPC gateway (no Go dependency on etcd's client).
type etcdCluster struct {
	bin    string
	procs  []*proc
	urls   []string // client URL of each member
	names  []string
	ready  bool // a leader was found once: later changes are counted
	hc     *http.Client
	leader atomic.Int32
	retry  retryStats
}

// u64 reads an int64/uint64 the gateway writes as a JSON string (or number).
type u64 uint64

func (v *u64) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*v = 0
		return nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	*v = u64(n)
	return err
}

type etcdHeader struct {
	MemberID u64 `json:"member_id"`
	Revision u64 `json:"revision"`
}

func startEtcd(ctx context.Context, bin, dir string, hc *http.Client) (*etcdCluster, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		c, err := tryStartEtcd(ctx, bin, filepath.Join(dir, fmt.Sprintf("etcd-%d", attempt)), hc)
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
		fmt.Fprintf(os.Stderr, "etcd: a port was taken, retrying with others\n")
	}
	return nil, lastErr
}

func tryStartEtcd(ctx context.Context, bin, dir string, hc *http.Client) (*etcdCluster, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ports, err := freePorts(6)
	if err != nil {
		return nil, err
	}
	c := &etcdCluster{bin: bin, hc: hc}
	var initial []string
	for i := 0; i < 3; i++ {
		c.names = append(c.names, fmt.Sprintf("e%d", i+1))
		c.urls = append(c.urls, fmt.Sprintf("http://127.0.0.1:%d", ports[2*i]))
		initial = append(initial, fmt.Sprintf("e%d=http://127.0.0.1:%d", i+1, ports[2*i+1]))
	}
	token := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	for i := 0; i < 3; i++ {
		peer := fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1])
		args := []string{
			"--name", c.names[i],
			"--data-dir", filepath.Join(dir, c.names[i]),
			"--listen-client-urls", c.urls[i],
			"--advertise-client-urls", c.urls[i],
			"--listen-peer-urls", peer,
			"--initial-advertise-peer-urls", peer,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new",
			"--initial-cluster-token", token,
			"--logger", "zap",
			"--log-level", "warn",
		}
		p, err := startProc("etcd "+c.names[i], filepath.Join(dir, c.names[i]+".log"), bin, args...)
		if err != nil {
			return c, err
		}
		c.procs = append(c.procs, p)
	}
	deadline, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := c.waitFor(deadline, "every member healthy", func() error {
		for i, u := range c.urls {
			var h struct {
				Health string `json:"health"`
			}
			if err := c.call(deadline, http.MethodGet, u+"/health", nil, &h); err != nil {
				return fmt.Errorf("%s: %w", c.names[i], err)
			}
			if h.Health != "true" {
				return fmt.Errorf("%s: health %q", c.names[i], h.Health)
			}
		}
		return nil
	}); err != nil {
		return c, err
	}
	if err := c.waitFor(deadline, "a leader", func() error { return c.findLeader(deadline) }); err != nil {
		return c, err
	}
	c.ready = true
	rev, err := c.put(deadline, "/bench/ready", "1")
	if err != nil {
		return c, fmt.Errorf("first put: %w", err)
	}
	if err := c.waitFor(deadline, "every member to apply the first put", func() error {
		for i, u := range c.urls {
			var st struct {
				Header etcdHeader `json:"header"`
			}
			if err := c.call(deadline, http.MethodPost, u+"/v3/maintenance/status", map[string]any{}, &st); err != nil {
				return err
			}
			if uint64(st.Header.Revision) < rev {
				return fmt.Errorf("%s at revision %d < %d", c.names[i], st.Header.Revision, rev)
			}
		}
		return nil
	}); err != nil {
		return c, err
	}
	return c, nil
}

func (c *etcdCluster) waitFor(ctx context.Context, what string, check func() error) error {
	return waitProcs(ctx, "etcd", what, c.procs, check)
}

func (c *etcdCluster) findLeader(ctx context.Context) error {
	for i, u := range c.urls {
		var st struct {
			Header etcdHeader `json:"header"`
			Leader u64        `json:"leader"`
		}
		if err := c.call(ctx, http.MethodPost, u+"/v3/maintenance/status", map[string]any{}, &st); err != nil {
			return err
		}
		if st.Leader != 0 && st.Leader == st.Header.MemberID {
			if old := c.leader.Swap(int32(i)); old != int32(i) && c.ready {
				c.retry.leaderChanges.Add(1)
			}
			return nil
		}
	}
	return errors.New("no member says it is the leader")
}

func (c *etcdCluster) stop() { stopAll(c.procs, 10*time.Second) }

func (c *etcdCluster) name() string { return "etcd" }

func (c *etcdCluster) describe() string {
	l := c.leader.Load()
	return fmt.Sprintf("3 members, leader %s (%s)", c.names[l], c.urls[l])
}

func (c *etcdCluster) retries() *retryStats { return &c.retry }

func (c *etcdCluster) processes() []*proc { return c.procs }

// call sends a JSON request and decodes a 200 answer.
func (c *etcdCluster) call(ctx context.Context, method, url string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return &statusError{code: resp.StatusCode, msg: fmt.Sprintf("%s %s: %s: %s", method, url, resp.Status, strings.TrimSpace(string(raw)))}
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return e.msg }

// retryable says whether a put may succeed if sent again: a connection
// failure or a 5xx (no leader, leader changed: gRPC Unavailable is 503).
func retryable(err error) bool {
	var se *statusError
	if errors.As(err, &se) {
		return se.code >= 500
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

var b64 = base64.StdEncoding.EncodeToString

// put writes one key on the leader and returns the revision it made. A
// failure is retried, after looking for the leader again, until ctx ends.
func (c *etcdCluster) put(ctx context.Context, key, value string) (uint64, error) {
	body := map[string]string{"key": b64([]byte(key)), "value": b64([]byte(value))}
	for {
		var out struct {
			Header etcdHeader `json:"header"`
		}
		err := c.call(ctx, http.MethodPost, c.urls[c.leader.Load()]+"/v3/kv/put", body, &out)
		if err == nil {
			if out.Header.Revision == 0 {
				return 0, errors.New("put answered without a revision")
			}
			return uint64(out.Header.Revision), nil
		}
		if ctx.Err() != nil || !retryable(err) {
			return 0, err
		}
		c.retry.note(err)
		sleepCtx(ctx, 50*time.Millisecond)
		lctx, cancel := context.WithTimeout(ctx, time.Second)
		_ = c.findLeader(lctx)
		cancel()
	}
}

// The value is the body coexist gets for the same write.
const etcdValue = `{"clients":">= 1.0"}`

func (c *etcdCluster) Write(ctx context.Context, phase string, w, i int) (uint64, error) {
	return c.put(ctx, fmt.Sprintf("/bench/services/bench-%s-%d/1.0.%d", phase, w, i), etcdValue)
}

func (c *etcdCluster) FanoutWrite(ctx context.Context, round int) (uint64, error) {
	svc, ver := fanoutKey(round)
	return c.put(ctx, "/bench/services/"+svc+"/"+ver, etcdValue)
}

// etcdWatchers are n watches of a key prefix, each its own streaming POST
// /v3/watch (one HTTP connection and one gateway stream per watch), spread
// evenly over the three members.
type etcdWatchers struct {
	watchers
	events     atomic.Int64
	reconnects atomic.Int64
}

func (c *etcdCluster) StartWatchers(ctx context.Context, hc *http.Client, n int, prefix string, seen func(i int, idx uint64)) (*etcdWatchers, error) {
	wctx, cancel := context.WithCancel(ctx)
	ew := &etcdWatchers{watchers: watchers{cancel: cancel}}
	var ready sync.WaitGroup
	ready.Add(n)
	for i := 0; i < n; i++ {
		url := c.urls[i%len(c.urls)] + "/v3/watch"
		ew.wg.Add(1)
		go func() {
			defer ew.wg.Done()
			ew.loop(wctx, hc, url, prefix, func(rev uint64) { seen(i, rev) }, ready.Done)
		}()
	}
	if err := ew.waitReady(ctx, &ready, "etcd: watches not all created"); err != nil {
		return nil, err
	}
	return ew, nil
}

// prefixEnd is the range end of a prefix watch.
func prefixEnd(p string) string {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return "\x00"
}

type watchResponse struct {
	Result *struct {
		Header   etcdHeader `json:"header"`
		Created  bool       `json:"created"`
		Canceled bool       `json:"canceled"`
		Events   []struct {
			KV struct {
				ModRevision u64 `json:"mod_revision"`
			} `json:"kv"`
		} `json:"events"`
	} `json:"result"`
	Error *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// loop is one watch: a streaming POST whose answer is a JSON object per
// watch response. It reconnects (from the next revision) if the stream ends.
func (ew *etcdWatchers) loop(ctx context.Context, hc *http.Client, url, prefix string, seen func(uint64), ready func()) {
	var last uint64
	first := true
	for attempt := 0; ctx.Err() == nil; attempt++ {
		create := map[string]any{"key": b64([]byte(prefix)), "range_end": b64([]byte(prefixEnd(prefix)))}
		if attempt > 0 {
			ew.reconnects.Add(1)
		}
		if last > 0 {
			create["start_revision"] = strconv.FormatUint(last+1, 10)
		}
		body, _ := json.Marshal(map[string]any{"create_request": create})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			if ctx.Err() == nil {
				ew.fail(err)
				sleepCtx(ctx, 100*time.Millisecond)
			}
			continue
		}
		if resp.StatusCode != http.StatusOK {
			raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			ew.fail(fmt.Errorf("POST %s: %s: %s", url, resp.Status, raw))
			sleepCtx(ctx, 100*time.Millisecond)
			continue
		}
		dec := json.NewDecoder(resp.Body)
		for {
			var wr watchResponse
			if err := dec.Decode(&wr); err != nil {
				if ctx.Err() == nil {
					ew.fail(fmt.Errorf("watch stream: %w", err))
				}
				break
			}
			if wr.Error != nil {
				ew.fail(fmt.Errorf("watch stream error: %s", wr.Error.Message))
				break
			}
			if wr.Result == nil {
				continue
			}
			if wr.Result.Created && first {
				first = false
				ready()
			}
			if wr.Result.Canceled {
				ew.fail(errors.New("watch canceled by the server"))
				break
			}
			var max uint64
			for _, e := range wr.Result.Events {
				max = maxU(max, uint64(e.KV.ModRevision))
			}
			if max > 0 {
				ew.events.Add(int64(len(wr.Result.Events)))
				last = maxU(last, max)
				seen(max)
			}
		}
		resp.Body.Close()
	}
}

func maxU(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}
