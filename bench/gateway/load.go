package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coexist-dev/coexist/api"
)

// The load generators all send the same request to every target, byte for
// byte apart from Host: the gateway needs the two Coexist-Client headers,
// and nginx and the greeter get them too.
const (
	callPath      = "/greeter/hello"
	clientName    = "x"
	clientVersion = "1.0.0"
)

func requestBytes(addr, path string) []byte {
	return []byte("GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nCoexist-Client: " + clientName +
		"\r\nCoexist-Client-Version: " + clientVersion + "\r\n\r\n")
}

// rawConn is a minimal HTTP/1.1 keep-alive client on one connection: it
// writes a prepared request and reads the answer's status, the headers it
// needs and its body. It costs a fraction of net/http's client, so that the
// generator, which shares the machine's CPUs with the servers, takes as
// little of them as it can.
type rawConn struct {
	addr string
	req  []byte
	c    net.Conn
	br   *bufio.Reader
}

func newRawConn(addr string) *rawConn {
	return &rawConn{addr: addr, req: requestBytes(addr, callPath)}
}

// newRawConnPath is a rawConn that calls path instead of the greeter's
// hello.
func newRawConnPath(addr, path string) *rawConn {
	return &rawConn{addr: addr, req: requestBytes(addr, path)}
}

func (r *rawConn) close() {
	if r.c != nil {
		r.c.Close()
		r.c = nil
	}
}

type answer struct {
	status   int
	servedBy string // Coexist-Served-By, when wantServedBy
}

var (
	hdrContentLength    = []byte("content-length")
	hdrTransferEncoding = []byte("transfer-encoding")
	hdrConnection       = []byte("connection")
	hdrServedBy         = []byte(api.HeaderServedBy) // compared without case
)

// do sends one call and reads its answer; on any error the connection is
// closed, and the next call dials again.
func (r *rawConn) do(deadline time.Time, wantServedBy bool) (answer, error) {
	if r.c == nil {
		c, err := net.DialTimeout("tcp", r.addr, 2*time.Second)
		if err != nil {
			return answer{}, err
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
		}
		r.c = c
		if r.br == nil {
			r.br = bufio.NewReaderSize(c, 16<<10)
		} else {
			r.br.Reset(c)
		}
	}
	_ = r.c.SetDeadline(deadline)
	a, err := r.roundTrip(wantServedBy)
	if err != nil {
		r.close()
	}
	return a, err
}

func (r *rawConn) roundTrip(wantServedBy bool) (answer, error) {
	var a answer
	if _, err := r.c.Write(r.req); err != nil {
		return a, err
	}
	line, err := r.br.ReadSlice('\n')
	if err != nil {
		return a, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return a, fmt.Errorf("bad status line %q", line)
	}
	a.status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return a, fmt.Errorf("bad status line %q", line)
	}
	length, chunked, closeAfter := -1, false, false
	for {
		line, err = r.br.ReadSlice('\n')
		if err != nil {
			return a, err
		}
		if len(line) <= 2 { // "\r\n": end of the headers
			break
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return a, fmt.Errorf("bad header line %q", line)
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, hdrContentLength):
			length, err = strconv.Atoi(string(v))
			if err != nil {
				return a, fmt.Errorf("bad Content-Length %q", v)
			}
		case bytes.EqualFold(k, hdrTransferEncoding):
			chunked = bytes.EqualFold(v, []byte("chunked"))
		case bytes.EqualFold(k, hdrConnection):
			closeAfter = bytes.EqualFold(v, []byte("close"))
		case wantServedBy && bytes.EqualFold(k, hdrServedBy):
			a.servedBy = string(v)
		}
	}
	switch {
	case chunked:
		for {
			line, err = r.br.ReadSlice('\n')
			if err != nil {
				return a, err
			}
			s, _, _ := strings.Cut(strings.TrimSpace(string(line)), ";")
			n, err := strconv.ParseInt(s, 16, 64)
			if err != nil {
				return a, fmt.Errorf("bad chunk size %q", line)
			}
			if n == 0 {
				for { // trailers, up to the empty line
					line, err = r.br.ReadSlice('\n')
					if err != nil {
						return a, err
					}
					if len(line) <= 2 {
						break
					}
				}
				break
			}
			if _, err := r.br.Discard(int(n) + 2); err != nil {
				return a, err
			}
		}
	case length >= 0:
		if _, err := r.br.Discard(length); err != nil {
			return a, err
		}
	default:
		closeAfter = true
		if _, err := io.Copy(io.Discard, r.br); err != nil {
			return a, err
		}
	}
	if closeAfter {
		r.close()
	}
	return a, nil
}

// loadResult is one run of a load generator against one target.
type loadResult struct {
	target    string
	generator string // "wrk" or "go"
	calls     int64
	elapsed   time.Duration
	lat       []time.Duration // sorted; nil for wrk (see wrkPct)
	wrkPct    map[int]time.Duration
	errs      int64
	non200    int64
	firstErr  string
	wrongPeer int64 // gateway answers not served by the expected container
	// CPU time of the processes under test during the run: the proxy
	// (nginx's master and workers, or the agent) and the greeter.
	proxyCPU, greeterCPU, genCPU time.Duration
	// Open loop only.
	rate      float64
	schedLat  []time.Duration // from the scheduled send time, sorted
	lateSends int64           // sent more than lateAfter after their slot
}

func (r *loadResult) perSec() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.calls) / r.elapsed.Seconds()
}

func (r *loadResult) pct(q int) time.Duration {
	if r.wrkPct != nil {
		return r.wrkPct[q]
	}
	return percentile(r.lat, float64(q)/100)
}

// percentile is the nearest-rank q-quantile of sorted values.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// errCounter keeps the count and the first of a run's errors.
type errCounter struct {
	n     atomic.Int64
	first atomic.Pointer[string]
}

func (e *errCounter) add(err error) {
	e.n.Add(1)
	s := err.Error()
	e.first.CompareAndSwap(nil, &s)
}

func (e *errCounter) firstString() string {
	if p := e.first.Load(); p != nil {
		return *p
	}
	return ""
}

// closedLoop runs conns connections, each sending its next call as soon as
// the last is answered, for warmup (not measured) then dur.
func closedLoop(ctx context.Context, addr string, conns int, warmup, dur time.Duration, expectServedBy string) *loadResult {
	res := &loadResult{generator: "go"}
	var errs errCounter
	var non200, wrong atomic.Int64
	var measuring atomic.Bool
	start := time.Now()
	measureFrom := start.Add(warmup)
	end := measureFrom.Add(dur)
	lats := make([][]time.Duration, conns)
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc := newRawConn(addr)
			defer rc.close()
			l := make([]time.Duration, 0, 1<<16)
			for ctx.Err() == nil {
				t := time.Now()
				if t.After(end) {
					break
				}
				a, err := rc.do(t.Add(10*time.Second), expectServedBy != "")
				d := time.Since(t)
				if !t.Before(measureFrom) {
					measuring.Store(true)
					switch {
					case err != nil:
						errs.add(err)
						time.Sleep(time.Millisecond)
						continue
					case a.status != 200:
						non200.Add(1)
					case expectServedBy != "" && a.servedBy != expectServedBy:
						wrong.Add(1)
					}
					l = append(l, d)
				}
			}
			lats[i] = l
		}()
	}
	wg.Wait()
	res.elapsed = dur
	for _, l := range lats {
		res.lat = append(res.lat, l...)
	}
	slices.Sort(res.lat)
	res.calls = int64(len(res.lat))
	res.errs, res.non200, res.wrongPeer = errs.n.Load(), non200.Load(), wrong.Load()
	res.firstErr = errs.firstString()
	return res
}

// lateAfter is how far past its slot a call may be sent before it counts as
// late: Go's timers wake up to about 1ms late (the netpoller waits in whole
// milliseconds), so a lateness below 2ms says nothing of the target.
const lateAfter = 2 * time.Millisecond

// openLoop sends calls at a fixed rate: worker k of conns, each with its own
// connection, sends at start + (k + j*conns)/rate for j = 0, 1, ...; a worker
// whose previous call is still out when its slot comes sends late (counted
// in lateSends when more than lateAfter late; its latency from the slot is
// in schedLat). lat is the time from the write of the request to the end of
// the answer.
func openLoop(ctx context.Context, addr string, conns int, rate float64, warmup, dur time.Duration, expectServedBy string) *loadResult {
	res := &loadResult{generator: "go", rate: rate}
	var errs errCounter
	var non200, wrong, late atomic.Int64
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now().Add(50 * time.Millisecond)
	measureFrom := start.Add(warmup)
	end := measureFrom.Add(dur)
	lats := make([][]time.Duration, conns)
	sched := make([][]time.Duration, conns)
	lastDone := make([]time.Time, conns)
	var wg sync.WaitGroup
	for k := 0; k < conns; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc := newRawConn(addr)
			defer rc.close()
			// Connect before the first slot, so that no call pays a dial.
			_, _ = rc.do(time.Now().Add(5*time.Second), false)
			var l, s []time.Duration
			for j := 0; ctx.Err() == nil; j++ {
				slot := start.Add(time.Duration(k+j*conns) * interval)
				if slot.After(end) {
					break
				}
				if d := time.Until(slot); d > 0 {
					time.Sleep(d)
				}
				t := time.Now()
				a, err := rc.do(t.Add(10*time.Second), expectServedBy != "")
				done := time.Now()
				if slot.Before(measureFrom) {
					continue
				}
				if t.Sub(slot) > lateAfter {
					late.Add(1)
				}
				switch {
				case err != nil:
					errs.add(err)
					continue
				case a.status != 200:
					non200.Add(1)
				case expectServedBy != "" && a.servedBy != expectServedBy:
					wrong.Add(1)
				}
				l = append(l, done.Sub(t))
				s = append(s, done.Sub(slot))
				lastDone[k] = done
			}
			lats[k], sched[k] = l, s
		}()
	}
	wg.Wait()
	// A target that cannot keep up answers its last slots after end: the
	// rate achieved is the calls over the time until the last answer.
	res.elapsed = dur
	for _, t := range lastDone {
		if d := t.Sub(measureFrom); d > res.elapsed {
			res.elapsed = d
		}
	}
	for k := range lats {
		res.lat = append(res.lat, lats[k]...)
		res.schedLat = append(res.schedLat, sched[k]...)
	}
	slices.Sort(res.lat)
	slices.Sort(res.schedLat)
	res.calls = int64(len(res.lat))
	res.errs, res.non200, res.wrongPeer, res.lateSends = errs.n.Load(), non200.Load(), wrong.Load(), late.Load()
	res.firstErr = errs.firstString()
	return res
}

// runWrk runs wrk against addr and parses its report.
func runWrk(ctx context.Context, wrkBin, addr string, threads, conns int, dur time.Duration) (*loadResult, error) {
	secs := int((dur + time.Second - 1) / time.Second)
	args := []string{"-t" + strconv.Itoa(threads), "-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(secs) + "s",
		"--latency", "--timeout", "5s",
		"-H", "Coexist-Client: " + clientName, "-H", "Coexist-Client-Version: " + clientVersion,
		"http://" + addr + callPath}
	wctx, cancel := context.WithTimeout(ctx, dur+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(wctx, wrkBin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return nil, fmt.Errorf("wrk %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	res, err := parseWrk(out.String())
	if err != nil {
		return nil, fmt.Errorf("wrk %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	if ps := cmd.ProcessState; ps != nil {
		res.genCPU = ps.UserTime() + ps.SystemTime()
	}
	return res, nil
}

var (
	reWrkTotal  = regexp.MustCompile(`(\d+) requests in ([0-9.]+)(us|ms|s|m|h),`)
	reWrkRPS    = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reWrkPct    = regexp.MustCompile(`(?m)^\s+(50|75|90|99)%\s+([0-9.]+)(us|ms|s|m)\s*$`)
	reWrkSocket = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	reWrkNon2xx = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

func wrkDuration(num, unit string) (time.Duration, error) {
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, err
	}
	mult := map[string]float64{"us": 1e3, "ms": 1e6, "s": 1e9, "m": 60e9, "h": 3600e9}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("unknown unit %q", unit)
	}
	return time.Duration(f * mult), nil
}

func parseWrk(s string) (*loadResult, error) {
	res := &loadResult{generator: "wrk", wrkPct: map[int]time.Duration{}}
	m := reWrkTotal.FindStringSubmatch(s)
	if m == nil {
		return nil, errors.New("no \"N requests in T\" line")
	}
	res.calls, _ = strconv.ParseInt(m[1], 10, 64)
	var err error
	if res.elapsed, err = wrkDuration(m[2], m[3]); err != nil {
		return nil, err
	}
	if m := reWrkRPS.FindStringSubmatch(s); m == nil {
		return nil, errors.New("no Requests/sec line")
	}
	for _, m := range reWrkPct.FindAllStringSubmatch(s, -1) {
		q, _ := strconv.Atoi(m[1])
		d, err := wrkDuration(m[2], m[3])
		if err != nil {
			return nil, err
		}
		res.wrkPct[q] = d
	}
	if len(res.wrkPct) < 4 {
		return nil, errors.New("no latency distribution (wrk --latency)")
	}
	if m := reWrkSocket.FindStringSubmatch(s); m != nil {
		for _, x := range m[1:] {
			n, _ := strconv.ParseInt(x, 10, 64)
			res.errs += n
		}
		if res.errs > 0 {
			res.firstErr = m[0]
		}
	}
	if m := reWrkNon2xx.FindStringSubmatch(s); m != nil {
		res.non200, _ = strconv.ParseInt(m[1], 10, 64)
	}
	return res, nil
}
