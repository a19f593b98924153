package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
)

const wrkOutput = `Running 10s test @ http://127.0.0.1:21960/greeter/hello
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.38ms    2.07ms  45.61ms   91.05%
    Req/Sec    24.18k     2.01k   29.87k    71.50%
  Latency Distribution
     50%  828.00us
     75%    1.30ms
     90%    3.07ms
     99%    1.02s
  481312 requests in 10.00s, 68.39MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:  48126.54
Transfer/sec:      6.84MB
`

func TestParseWrk(t *testing.T) {
	r, err := parseWrk(wrkOutput)
	if err != nil {
		t.Fatal(err)
	}
	if r.calls != 481312 || r.elapsed != 10*time.Second {
		t.Errorf("calls %d in %v, want 481312 in 10s", r.calls, r.elapsed)
	}
	want := map[int]time.Duration{50: 828 * time.Microsecond, 75: 1300 * time.Microsecond, 90: 3070 * time.Microsecond, 99: 1020 * time.Millisecond}
	for q, d := range want {
		if got := r.pct(q); got != d {
			t.Errorf("p%d = %v, want %v", q, got, d)
		}
	}
	if r.errs != 3 || r.non200 != 7 {
		t.Errorf("errors %d, non-2xx %d; want 3 and 7", r.errs, r.non200)
	}
	if _, err := parseWrk("unable to connect to 127.0.0.1:1 Connection refused"); err == nil {
		t.Error("parseWrk accepted a failed run")
	}
}

func TestRawConn(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Coexist-Client-Version") != clientVersion || r.Header.Get("Coexist-Client") != clientName {
			http.Error(w, "missing client headers", http.StatusBadRequest)
			return
		}
		w.Header().Set(api.HeaderServedBy, "greeter@1.0.0 c1")
		if r.URL.Query().Get("chunked") != "" || r.URL.Path == "/chunked" {
			w.(http.Flusher).Flush() // no Content-Length: chunked
			fmt.Fprint(w, strings.Repeat("x", 100))
			w.(http.Flusher).Flush()
			fmt.Fprint(w, "end")
			return
		}
		fmt.Fprint(w, "hello")
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	for _, path := range []string{callPath, "/chunked"} {
		rc := newRawConnPath(addr, path)
		for i := 0; i < 3; i++ { // the same connection, kept alive
			a, err := rc.do(time.Now().Add(5*time.Second), true)
			if err != nil {
				t.Fatalf("%s call %d: %v", path, i, err)
			}
			if a.status != 200 || a.servedBy != "greeter@1.0.0 c1" {
				t.Fatalf("%s call %d: status %d, served by %q", path, i, a.status, a.servedBy)
			}
		}
		rc.close()
	}
}

func TestProtoForwarder(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.Header.Get("X-Forwarded-For"))
	}))
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := startProtoForwarder(ln, strings.TrimPrefix(srv.URL, "http://"), "greeter@1.0.0 c1")
	defer f.close()
	rc := newRawConn(ln.Addr().String())
	defer rc.close()
	for i := 0; i < 3; i++ {
		a, err := rc.do(time.Now().Add(5*time.Second), true)
		if err != nil || a.status != 200 || a.servedBy != "greeter@1.0.0 c1" {
			t.Fatalf("call %d: %+v, %v", i, a, err)
		}
	}
}

func TestPercentile(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 100; i++ {
		s = append(s, time.Duration(i))
	}
	for q, want := range map[float64]time.Duration{0.5: 50, 0.9: 90, 0.99: 99, 1: 100, 0: 1} {
		if got := percentile(s, q); got != want {
			t.Errorf("percentile(%v) = %v, want %v", q, got, want)
		}
	}
}
