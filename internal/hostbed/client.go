package hostbed

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/client"
)

// ClientConfig is what a client helper does: calls to greeter at Rate a
// second through the SDK, as Name@Version, for Duration or until SIGTERM.
type ClientConfig struct {
	Name, Version string
	Registry      string // server URLs, comma-separated
	Token         string
	Rate          int
	Deadline      time.Duration
	Duration      time.Duration
	Out           string // file of CallRecord lines
}

// CallRecord is one call a client made.
type CallRecord struct {
	Start, End int64  // Unix nanoseconds
	OK         bool   // a 200 answer
	ServedBy   string `json:",omitempty"`
	Err        string `json:",omitempty"`
}

// RunClient is the client helper: it runs on a client host (in its
// namespace), so its calls and its registry watch cross the bed's links.
func RunClient(config string) error {
	var cfg ClientConfig
	if err := json.Unmarshal([]byte(config), &cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	out, err := os.OpenFile(cfg.Out, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	w := bufio.NewWriter(out)
	defer w.Flush()
	var mu sync.Mutex
	emit := func(r CallRecord) {
		b, _ := json.Marshal(r)
		mu.Lock()
		w.Write(append(b, '\n'))
		if w.Buffered() > 32<<10 {
			w.Flush()
		}
		mu.Unlock()
	}
	var sdk *client.Client
	for sdk == nil { // the registry may be cut off at first
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		sdk, err = client.New(sctx, client.Config{Name: cfg.Name, Version: cfg.Version, Registry: cfg.Registry, Token: cfg.Token})
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, "sdk:", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
		}
	}
	defer sdk.Close()
	hc := &http.Client{Transport: sdk.Transport()}
	tick := time.NewTicker(time.Second / time.Duration(max(cfg.Rate, 1)))
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	inflight := make(chan struct{}, 256) // bounds the calls in flight
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		select {
		case inflight <- struct{}{}:
		default:
			emit(CallRecord{Start: time.Now().UnixNano(), End: time.Now().UnixNano(), Err: "client: 256 calls in flight"})
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-inflight }()
			emit(call(hc, cfg.Deadline))
		}()
	}
}

func call(hc *http.Client, deadline time.Duration) CallRecord {
	r := CallRecord{Start: time.Now().UnixNano()}
	defer func() { r.End = time.Now().UnixNano() }()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://greeter/hello", nil)
	resp, err := hc.Do(req)
	if err != nil {
		r.Err = err.Error()
		r.End = time.Now().UnixNano()
		return r
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	r.End = time.Now().UnixNano()
	switch {
	case err != nil:
		r.Err = err.Error()
	case resp.StatusCode != http.StatusOK:
		r.Err = fmt.Sprintf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	default:
		r.OK = true
		r.ServedBy = resp.Header.Get(api.HeaderServedBy)
	}
	return r
}

// StartClient adds host id and starts a client helper on it (this test
// binary, re-executed with EnvRole=client), calling as name@ver.
func (c *Cluster) StartClient(id, name, ver string, rate int) (*Proc, string, error) {
	h, err := c.Bed.AddHost(id)
	if err != nil {
		return nil, "", err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	var urls []string
	for _, s := range c.Servers {
		urls = append(urls, s.URL())
	}
	out := h.Dir() + "/calls.jsonl"
	cfg, _ := json.Marshal(ClientConfig{Name: name, Version: ver, Registry: strings.Join(urls, ","), Token: c.Cfg.Token,
		Rate: rate, Deadline: 10 * time.Second, Out: out})
	p := h.Command("client", []string{EnvRole + "=client", "CXBED_CLIENT=" + string(cfg)}, self)
	return p, out, p.Start()
}

// ReadCalls reads a client's call records.
func ReadCalls(path string) ([]CallRecord, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []CallRecord
	dec := json.NewDecoder(f)
	for {
		var r CallRecord
		if err := dec.Decode(&r); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return out, fmt.Errorf("read calls %s: %w", path, err) // a line cut by kill: keep the rest
		}
		out = append(out, r)
	}
}
