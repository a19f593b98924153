package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/client"
	"github.com/coexist-dev/coexist/client/callpolicy"
)

// runLoad is `coexist load`: a steady stream of calls to one service as one
// client version. By default the calls go through the client SDK (package
// client), which picks the version and container from its watched route
// table and retries by the rule of DESIGN §7; with --gateway they go to that
// gateway directly and the same rule is applied here, by the SDK's own
// package callpolicy (only connections never made and `Coexist-Retry: safe`
// answers, with backoff, within each call's deadline). It prints a line a second and, at the end, the totals;
// it exits 1 when any call failed.
func runLoad(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs)
	gateway := fs.String("gateway", "", "call through this gateway directly instead of through the SDK")
	who := fs.String("client", "", "the caller, name@version (required)")
	rate := fs.Int("rate", 100, "calls per second, spaced evenly")
	workers := fs.Int("workers", 8, "callers sharing the rate: at most this many calls in flight")
	duration := fs.Duration("duration", 0, "how long to run (0: until SIGINT or SIGTERM)")
	deadline := fs.Duration("deadline", 10*time.Second, "each call's deadline, retries included")
	quiet := fs.Bool("quiet", false, "print only the totals")
	describe(fs, "[flags] <service> <path>",
		"Calls a service at a steady rate as one client version, through the SDK or one gateway,\n"+
			"printing a line a second and the totals; exits 1 when any call failed.",
		"coexist load --client web@1.3.0 --rate 50 --duration 30s greeter /hello")
	pos, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	name, ver, ok := strings.Cut(*who, "@")
	var bad string
	switch {
	case *who == "":
		bad = "--client name@version is required"
	case !ok || name == "" || ver == "":
		bad = fmt.Sprintf("--client %q: want name@version, e.g. web@1.3.0", *who)
	case *rate <= 0:
		bad = fmt.Sprintf("--rate %d: want a positive number of calls per second", *rate)
	case *workers <= 0:
		bad = fmt.Sprintf("--workers %d: want at least 1", *workers)
	}
	if bad != "" {
		fmt.Fprintf(stderr, "coexist load: %s\n", bad)
		return 2
	}
	if !checkArgs(stderr, "load", pos, "<service>", "<path>") {
		return 2
	}
	service, path := pos[0], pos[1]
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	l := &loader{url: "http://" + *gateway + "/" + service + path, name: name, version: ver, deadline: *deadline,
		http:   &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *workers * 2, Proxy: nil}},
		served: map[string]int64{}}
	if *gateway == "" {
		api, err := cf.client()
		if err != nil {
			fmt.Fprintf(stderr, "coexist load: %v\n", err)
			return 2
		}
		sdk, err := client.New(ctx, client.Config{Name: name, Version: ver, APIClient: api})
		if err != nil {
			fmt.Fprintf(stderr, "coexist load: %v\n", err)
			return 1
		}
		defer sdk.Close()
		l.url, l.http, l.sdk = "http://"+service+path, sdk.HTTPClient(), true
	}
	var wg sync.WaitGroup
	slots := make(chan struct{})
	go pace(ctx, time.Second/time.Duration(*rate), slots)
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range slots {
				l.call()
			}
		}()
	}
	if !*quiet {
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					fmt.Fprintf(stdout, "%s %s\n", *who, l.summary(true))
				}
			}
		}()
	}
	<-ctx.Done()
	wg.Wait()
	fmt.Fprintf(stdout, "%s total: %s\n", *who, l.summary(false))
	if l.failed.Load() > 0 {
		return 1
	}
	return 0
}

// pace hands out one slot every interval on slots, to whichever worker is
// free, until ctx ends; then it closes slots. The calls are so spread evenly
// over time, not sent in bursts of one per worker. When the workers were all
// busy for a whole interval, the slots missed meanwhile are skipped rather
// than made up, so that the calls never come in a burst.
func pace(ctx context.Context, interval time.Duration, slots chan<- struct{}) {
	defer close(slots)
	next := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		select {
		case <-ctx.Done():
			return
		case slots <- struct{}{}:
		}
		next = next.Add(interval)
		if now := time.Now(); !next.After(now) {
			next = now.Add(interval) // the next slot is past already: skip it, do not catch up
		}
		timer.Reset(time.Until(next))
	}
}

type loader struct {
	url, name, version string
	deadline           time.Duration
	http               *http.Client
	// sdk: the client SDK routes and retries; a failure it returns is final.
	sdk bool

	ok, failed, retries atomic.Int64
	mu                  sync.Mutex
	served              map[string]int64 // "service@version" -> calls, since the last window
	total               map[string]int64
	lastErr             string
}

func (l *loader) call() {
	ctx, cancel := context.WithTimeout(context.Background(), l.deadline)
	defer cancel()
	deadline, _ := ctx.Deadline()
	var policy callpolicy.Call
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, l.url, nil)
		req.Header.Set(api.HeaderClient, l.name)
		req.Header.Set(api.HeaderClientVersion, l.version)
		resp, err := l.http.Do(req)
		outcome := callpolicy.Classify(resp, err)
		var why string
		if err != nil {
			why = err.Error()
		} else {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode >= 200 && resp.StatusCode < 300 {
				ref := "(unknown)"
				if sb, err := api.ParseServedBy(resp.Header.Get(api.HeaderServedBy)); err == nil {
					ref = sb.Ref()
				}
				l.ok.Add(1)
				l.mu.Lock()
				l.served[ref]++
				l.mu.Unlock()
				return
			}
			why = resp.Status
		}
		// Through the SDK, a failure is final: it applied the policy.
		if !l.sdk {
			if pause, again := policy.Retry(outcome, true, time.Now(), deadline, callpolicy.SharedRand{}); again {
				l.retries.Add(1)
				select {
				case <-ctx.Done():
				case <-time.After(pause):
					continue
				}
			}
		}
		l.failed.Add(1)
		l.mu.Lock()
		l.lastErr = why
		l.mu.Unlock()
		return
	}
}

// summary renders the calls per served version; window resets the counts
// for the per-second lines.
func (l *loader) summary(window bool) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total == nil {
		l.total = map[string]int64{}
	}
	m := l.served
	if !window {
		for k, v := range l.served {
			l.total[k] += v
		}
		m = l.total
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	if window {
		for k, v := range l.served {
			l.total[k] += v
		}
		l.served = map[string]int64{}
	}
	s := fmt.Sprintf("ok=%d failed=%d retries=%d served: %s", l.ok.Load(), l.failed.Load(), l.retries.Load(), strings.Join(parts, " "))
	if l.failed.Load() > 0 && l.lastErr != "" {
		s += " (last error: " + l.lastErr + ")"
	}
	return s
}
