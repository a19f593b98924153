package netlimit

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestListenerWriteTimeout: a caller that reads nothing of a long answer
// does not hold its handler: a write fails within the write timeout.
func TestListenerWriteTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := Limits{WriteTimeout: 200 * time.Millisecond}
	failed := make(chan time.Duration, 1)
	srv := lim.Server(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		chunk := make([]byte, 1<<20)
		for range 256 {
			if _, err := w.Write(chunk); err != nil {
				failed <- time.Since(start)
				return
			}
		}
		failed <- -1
	}))
	go srv.Serve(Listener(ln, lim, nil))
	t.Cleanup(func() { srv.Close() })

	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.(*net.TCPConn).SetReadBuffer(4096)
	io.WriteString(nc, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	select {
	case d := <-failed:
		if d < 0 {
			t.Fatal("256 MiB written to a caller that reads nothing")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler still writes to a caller that reads nothing")
	}
}

func TestDefaultMaxConns(t *testing.T) {
	if n := DefaultMaxConns(); n < minDefaultConns || n > maxDefaultConns {
		t.Errorf("DefaultMaxConns() = %d, want within [%d, %d]", n, minDefaultConns, maxDefaultConns)
	}
	if got := (Limits{}).WithDefaults(); got != Defaults() {
		t.Errorf("zero Limits with defaults = %+v, want %+v", got, Defaults())
	}
}
