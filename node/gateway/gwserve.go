package gateway

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/internal/netlimit"
)

// Timeouts of the connections Serve answers on: the head, idle, body and
// write timeouts are GatewayConfig.Limits'.
const (
	// gwWatchAfter is how long a call may wait for its answer before the
	// gateway watches its caller's connection, so that a caller who goes
	// away ends the call (and its in-flight count). The watchdog looks for
	// such calls at this interval: a call is watched 1 to 2 intervals after
	// it was sent, and no call sets a timer of its own (which would wake
	// the runtime's network poller for every call).
	gwWatchAfter = 20 * time.Millisecond
	// gwBufSize is the size of every connection's read and write buffer. A
	// call whose head does not fit is answered by ServeHTTP.
	gwBufSize = 4096
	// gwMaxBody is the longest body of a call Serve answers itself (see
	// request.parse); net/http answers calls with longer ones.
	gwMaxBody = 64 << 10
	// gwMaxDiscard is the most of a refused call's body the gateway reads to
	// keep the connection; a longer one closes it.
	gwMaxDiscard = gwMaxBody
	// gwLinger is how long a connection closed with a call's body unread is
	// read and dropped first, so that the caller gets the answer before a
	// reset (net/http's rstAvoidanceDelay).
	gwLinger = 500 * time.Millisecond
)

// Connection states (gwConn.state).
const (
	connIdle   int32 = iota // waiting for a call's first byte
	connActive              // reading, forwarding or answering a call
	connClosed              // closed by Shutdown
)

// aLongTimeAgo is a deadline that interrupts a blocked read at once.
var aLongTimeAgo = time.Unix(1, 0)

// gwServer is the state of Serve.
type gwServer struct {
	initOnce sync.Once
	shutting atomic.Bool
	pool     *upstreamPool
	fallback *http.Server      // serves the connections handed over
	handed   *handoverListener // their listener
	done     chan struct{}     // closed by Shutdown and Close: stops the pool's janitor
	// watchdogDone stops the watchdog once the calls are over: until then a
	// caller who goes away still ends its call.
	watchdogDone chan struct{}
	watchdogOnce sync.Once
	wg           sync.WaitGroup // the fallback server, the watchdog and the pool's janitor
	mu           sync.Mutex     //
	lns          map[*net.Listener]struct{}
	conns        map[*gwConn]struct{}
	calls        atomic.Int64 // calls forwarded now (see yieldIfBusy)
	procs        int          // GOMAXPROCS when Serve started
}

func (g *Gateway) initServer() {
	s := &g.srv
	s.initOnce.Do(func() {
		s.pool = newUpstreamPool()
		s.procs = runtime.GOMAXPROCS(0)
		s.done = make(chan struct{})
		s.watchdogDone = make(chan struct{})
		s.lns = make(map[*net.Listener]struct{})
		s.conns = make(map[*gwConn]struct{})
		s.handed = newHandoverListener()
		lim := g.cfg.Limits
		s.fallback = &http.Server{
			Handler:           g, // which bounds body progress itself
			ReadHeaderTimeout: lim.HeadTimeout,
			IdleTimeout:       lim.IdleTimeout,
			MaxHeaderBytes:    lim.MaxHeaderBytes,
			ErrorLog:          g.errorLog,
		}
		s.wg.Add(3)
		go func() {
			defer s.wg.Done()
			_ = s.fallback.Serve(s.handed)
		}()
		go func() {
			defer s.wg.Done()
			s.watchdog(s.watchdogDone)
		}()
		go func() {
			defer s.wg.Done()
			s.pool.janitor(s.done)
		}()
	})
}

// Serve accepts connections on ln and answers the calls on them until
// Shutdown or Close, and then returns http.ErrServerClosed; it closes ln.
//
// Serve speaks HTTP/1.1 itself for the calls a service client makes: an
// origin-form path without percent-escapes (and a query ReverseProxy would
// relay as it is), a head that fits in 4 KiB, a body of a declared length up
// to 64 KiB, and no header that asks for more than forwarding
// (Expect, Upgrade, Transfer-Encoding, TE, Trailer and other hop-by-hop
// headers; a Connection header other than keep-alive or close). It writes the
// call to a pooled connection to its container, or to the gateway of the
// container's node, and relays the answer, all in the connection's own
// goroutine. A connection whose next call is anything else, including one to
// /v1/metrics, is handed whole to a net/http server running ServeHTTP, which
// answers every call of HTTP/1.x, malformed ones with its own 400s. Both
// route with the same decision and answer the same way (see Gateway).
//
// With GatewayConfig.Engine EngineStd, every connection goes to that
// net/http server.
func (g *Gateway) Serve(ln net.Listener) error {
	g.initServer()
	s := &g.srv
	defer ln.Close()
	s.mu.Lock()
	if s.shutting.Load() {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	s.lns[&ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.lns, &ln)
		s.mu.Unlock()
	}()

	// The connections open on ln, those handed to net/http included: over
	// Limits.MaxConns, a new one is refused at once (docs/design.md §5).
	var open atomic.Int64
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.shutting.Load() {
				return http.ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors, and the like: wait, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			g.logger.Warn("gateway accept failed; retrying", "error", err, "delay", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if open.Add(1) > int64(g.cfg.Limits.MaxConns) {
			open.Add(-1)
			g.refusedConns.Inc()
			netlimit.Refuse(nc, tooManyConns)
			continue
		}
		if g.cfg.Engine == EngineStd {
			g.handStd(nc, &open)
			continue
		}
		c := newGWConn(g, nc, &open)
		s.mu.Lock()
		if s.shutting.Load() {
			s.mu.Unlock()
			nc.Close()
			return http.ErrServerClosed
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		go c.serve()
	}
}

// tooManyConns answers a connection over Limits.MaxConns: it reached no
// service, so it is safe to retry, on another node or a moment later.
var tooManyConns = func() []byte {
	body := errorBody("gateway has too many connections open")
	b := appendStatus(nil, http.StatusServiceUnavailable, "Service Unavailable")
	b = append(b, "Content-Type: application/json\r\n"+api.HeaderRetry+": "+api.RetrySafe+"\r\nConnection: close\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	return append(b, body...)
}()

// Shutdown stops Serve gracefully: it closes the listeners and the idle
// connections, lets the calls in progress finish, then closes their
// connections, and returns when all are closed or ctx ends.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.initServer()
	s := &g.srv
	s.stop()
	// The connections handed to net/http are shut down meanwhile.
	fallbackDone := make(chan error, 1)
	go func() { fallbackDone <- s.fallback.Shutdown(ctx) }()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		for c := range s.conns {
			if c.state.CompareAndSwap(connIdle, connClosed) {
				c.nc.Close()
			}
		}
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	err := <-fallbackDone
	s.stopWatchdog()
	s.wg.Wait()
	s.pool.closeAll()
	return err
}

func (s *gwServer) stopWatchdog() { s.watchdogOnce.Do(func() { close(s.watchdogDone) }) }

// Close stops Serve at once: it closes the listeners and every connection,
// with the calls on them.
func (g *Gateway) Close() error {
	g.initServer()
	s := &g.srv
	s.stop()
	s.mu.Lock()
	for c := range s.conns {
		c.state.Store(connClosed)
		c.abort()
	}
	s.mu.Unlock()
	err := s.fallback.Close()
	s.stopWatchdog()
	s.wg.Wait()
	s.pool.closeAll()
	return err
}

// stop marks the server shutting down and closes its listeners, once.
func (s *gwServer) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutting.Swap(true) {
		return
	}
	for ln := range s.lns {
		(*ln).Close()
	}
	close(s.done)
	s.handed.Close()
}

// yieldIfBusy lets the other goroutines run first when more calls are in
// progress than the runtime has processors: the bytes a connection waits
// for then mostly arrive meanwhile, and a read at once would cost a system
// call that finds nothing, a park, and a wake by the network poller. When
// fewer calls are in progress, a yield would only wake another thread.
func (s *gwServer) yieldIfBusy() {
	if s.calls.Load() > int64(s.procs) {
		runtime.Gosched()
	}
}

func (s *gwServer) forget(c *gwConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// gwConn is one caller's connection to Serve.
type gwConn struct {
	g     *Gateway
	nc    net.Conn
	rd    connReader
	br    *bufio.Reader
	bw    *bufio.Writer
	state atomic.Int32
	ip    string // the caller's address, without its port: X-Forwarded-For
	req   request
	// deadline is nc's read deadline; zero: none. Only the connection's
	// goroutine sets it, or a watch it waits for.
	deadline time.Time
	// calls counts the calls read on the connection.
	calls int
	// open counts the connections of the listener; release frees this
	// one's place once.
	open    *atomic.Int64
	release sync.Once
	// up is the upstream connection of the last call, kept for the next
	// call to the same address.
	up *upConn
	// linger: the connection is closed with a call's body unread.
	linger bool

	// The watch of the caller's connection during a call (see gwWatchAfter).
	watching   bool         // armed and not stopped yet; the connection's goroutine's own
	waitSince  atomic.Int64 // when the armed call was sent, Unix ns; 0: none
	watchMu    sync.Mutex
	watchArmed bool          // a call waits for its answer
	watchUp    *upConn       // the connection it waits on
	watchDone  chan struct{} // closed when a started watch ends; nil: none
	gone       atomic.Bool   // the watch saw the caller go away
}

func newGWConn(g *Gateway, nc net.Conn, open *atomic.Int64) *gwConn {
	c := &gwConn{g: g, nc: nc, open: open}
	rw := newRawIO(nc)
	c.rd.r, c.rd.c = rw, c
	c.br = bufio.NewReaderSize(&c.rd, gwBufSize)
	// An answer's writes are bounded: a caller that reads nothing does
	// not hold the connection (docs/design.md §5).
	c.bw = bufio.NewWriterSize(&netlimit.Deadline{Conn: nc, W: rw, Timeout: g.cfg.Limits.WriteTimeout}, gwBufSize)
	if host, _, err := net.SplitHostPort(nc.RemoteAddr().String()); err == nil {
		c.ip = host
	}
	return c
}

// serve answers the calls on the connection until it closes, or hands it to
// the fallback server.
func (c *gwConn) serve() {
	s := &c.g.srv
	handed := false
	lim := &c.g.cfg.Limits
	defer func() {
		s.forget(c)
		if c.up != nil {
			s.pool.put(c.up)
		}
		if !handed {
			if c.linger {
				c.closeGracefully()
			}
			c.nc.Close()
			c.releaseSlot()
		}
	}()
	for {
		switch now := time.Now(); {
		case c.calls == 0:
			// The first call's head comes within HeadTimeout of the
			// accept, as net/http's ReadHeaderTimeout.
			if c.deadline.IsZero() {
				c.setDeadline(now.Add(lim.HeadTimeout))
			}
		case c.deadline.Sub(now) < lim.IdleTimeout/2:
			// The idle deadline is moved on only when half of it has
			// passed: a connection with no call is closed after one to
			// two IdleTimeouts, and a busy one costs no timer change per
			// call.
			c.setDeadline(now.Add(lim.IdleTimeout))
		}
		if c.br.Buffered() == 0 {
			// When busy, the caller's next call mostly comes while other
			// connections run: a read now would find nothing.
			s.yieldIfBusy()
		}
		if _, err := c.br.Peek(1); err != nil {
			return
		}
		if !c.state.CompareAndSwap(connIdle, connActive) {
			return // closed by Shutdown
		}
		if headEnd(c.bufferedBytes()) == 0 && c.calls > 0 {
			// The head is coming in parts: all of it within HeadTimeout.
			c.setDeadline(time.Now().Add(lim.HeadTimeout))
		}
		c.calls++
		n, ok, err := c.readHead()
		if err != nil {
			return
		}
		if !ok {
			handed = c.handOver()
			return
		}
		if c.req.contentLength > 0 {
			// A body takes the time it takes while it makes progress: each
			// read waits BodyTimeout at most (see connReader).
			c.setDeadline(time.Now().Add(lim.BodyTimeout))
			c.rd.progress = lim.BodyTimeout
		}
		ok = c.g.serveCall(c, n)
		c.rd.progress = 0
		if !ok {
			return
		}
		c.state.Store(connIdle)
		if s.shutting.Load() && c.state.CompareAndSwap(connIdle, connClosed) {
			return
		}
	}
}

// releaseSlot frees the connection's place among its listener's, once.
func (c *gwConn) releaseSlot() {
	c.release.Do(func() { c.open.Add(-1) })
}

// readHead reads a call's head into the buffer: its length, and whether
// Serve answers it itself. A head that does not fit in the buffer is not.
func (c *gwConn) readHead() (n int, ok bool, err error) {
	for {
		buf := c.bufferedBytes()
		if n := headEnd(buf); n > 0 {
			return n, c.req.parse(buf[:n]), nil
		}
		if len(buf) == c.br.Size() {
			return 0, false, nil
		}
		if _, err := c.br.Peek(len(buf) + 1); err != nil {
			return 0, false, err
		}
	}
}

// abort closes the connection and ends its call: the call's upstream
// connection is closed too, now or as soon as the call is sent.
func (c *gwConn) abort() {
	c.watchMu.Lock()
	c.gone.Store(true)
	if c.watchArmed && c.watchUp != nil {
		c.watchUp.close()
	}
	c.watchMu.Unlock()
	c.nc.Close()
}

// closeGracefully half-closes the connection and reads what the caller
// still sends for a while, so that the answer written last is not lost to a
// reset for unread data.
func (c *gwConn) closeGracefully() {
	c.bw.Flush()
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	c.nc.SetReadDeadline(time.Now().Add(gwLinger))
	io.Copy(io.Discard, io.LimitReader(c.nc, 4<<20))
}

// bufferedBytes returns what c.br holds, without reading.
func (c *gwConn) bufferedBytes() []byte {
	b, _ := c.br.Peek(c.br.Buffered())
	return b
}

// setDeadline sets the read deadline of the caller's connection.
func (c *gwConn) setDeadline(t time.Time) {
	c.deadline = t
	c.nc.SetReadDeadline(t)
}

// headEnd returns the length of the head at the start of buf, up to and
// including the empty line that ends it (CRLF or a bare LF, which parse
// refuses), or 0 when buf holds no whole head.
func headEnd(buf []byte) int {
	for i := 0; i < len(buf); i++ {
		if buf[i] != '\n' {
			continue
		}
		switch {
		case i+1 < len(buf) && buf[i+1] == '\n':
			return i + 2
		case i+2 < len(buf) && buf[i+1] == '\r' && buf[i+2] == '\n':
			return i + 3
		case i == 0:
			return 1
		case i == 1 && buf[0] == '\r':
			return 2
		}
	}
	return 0
}

// handOver gives the connection, with what is buffered of it, to the
// fallback server; false when it is shutting down and the connection is to
// be closed.
func (c *gwConn) handOver() bool {
	s := &c.g.srv
	s.mu.Lock()
	if s.shutting.Load() {
		s.mu.Unlock()
		return false
	}
	delete(s.conns, c)
	s.mu.Unlock()
	c.g.handed.Inc()
	buffered := c.bufferedBytes()
	hc := &handedConn{Conn: c.nc, release: c.releaseSlot}
	hc.w.Conn, hc.w.Timeout = c.nc, c.g.cfg.Limits.WriteTimeout
	hc.r = io.MultiReader(&rewound{b: append([]byte(nil), buffered...)}, &c.rd)
	return s.handed.hand(hc)
}

// handStd gives a new connection to the fallback server, for EngineStd.
func (g *Gateway) handStd(nc net.Conn, open *atomic.Int64) {
	var once sync.Once
	hc := &handedConn{Conn: nc, r: nc, release: func() { once.Do(func() { open.Add(-1) }) }}
	hc.w.Conn, hc.w.Timeout = nc, g.cfg.Limits.WriteTimeout
	g.handed.Inc()
	if !g.srv.handed.hand(hc) {
		hc.Close()
	}
}

// connReader reads a connection, first the byte a watch of the caller read
// (a pipelined call's).
type connReader struct {
	r        io.Reader // the connection's bytes (see newRawIO)
	c        *gwConn
	saved    byte
	hasSaved bool
	// progress, when not zero, is the longest wait for the next bytes of
	// a call's body: the read deadline is moved on as bytes come, when
	// half of it has passed (no timer change per read).
	progress time.Duration
}

func (r *connReader) Read(p []byte) (int, error) {
	if r.hasSaved && len(p) > 0 {
		p[0], r.hasSaved = r.saved, false
		return 1, nil
	}
	if r.progress > 0 {
		if now := time.Now(); r.c.deadline.Sub(now) < r.progress/2 {
			r.c.setDeadline(now.Add(r.progress))
		}
	}
	return r.r.Read(p)
}

// rewound reads b once.
type rewound struct{ b []byte }

func (r *rewound) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// handedConn is a connection handed to the fallback server, with the bytes
// Serve had already read of it; its writes are bounded, and it frees its
// place among its listener's connections when closed.
type handedConn struct {
	net.Conn
	r       io.Reader
	w       netlimit.Deadline
	release func()
}

func (c *handedConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *handedConn) Write(p []byte) (int, error) { return c.w.Write(p) }

func (c *handedConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

func (c *handedConn) CloseWrite() error { return netlimit.CloseWrite(c.Conn) }

// handoverListener is the fallback server's listener: it accepts the
// connections Serve hands over.
type handoverListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newHandoverListener() *handoverListener {
	return &handoverListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *handoverListener) hand(c net.Conn) bool {
	select {
	case <-l.done:
		return false
	default:
	}
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *handoverListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoverListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *handoverListener) Addr() net.Addr { return handoverAddr{} }

type handoverAddr struct{}

func (handoverAddr) Network() string { return "handover" }
func (handoverAddr) String() string  { return "gateway" }

// armWatch lets the watchdog watch the caller's connection while the call
// sent at sent waits on up (see gwWatchAfter); pending bytes of the call are
// still buffered.
func (c *gwConn) armWatch(up *upConn, pending int, sent time.Time) {
	if c.br.Buffered() > pending || c.rd.hasSaved {
		return // the caller has sent more already: it is there
	}
	c.watching = true
	c.watchMu.Lock()
	c.watchArmed, c.watchUp = true, up
	if c.gone.Load() {
		up.close() // aborted by Close
	}
	c.watchMu.Unlock()
	c.waitSince.Store(sent.UnixNano())
}

// watchdog starts, every gwWatchAfter until done is closed, the watch of
// the calls that have waited that long.
func (s *gwServer) watchdog(done <-chan struct{}) {
	t := time.NewTicker(gwWatchAfter)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			due := now.Add(-gwWatchAfter).UnixNano()
			s.mu.Lock()
			for c := range s.conns {
				if since := c.waitSince.Load(); since != 0 && since <= due {
					c.startWatch()
				}
			}
			s.mu.Unlock()
		}
	}
}

// startWatch starts a goroutine reading the caller's connection while a
// call waits for its answer: a caller who goes away closes the call's
// upstream connection, which ends the call. A byte read (a pipelined
// call's) is kept for the next call.
func (c *gwConn) startWatch() {
	c.watchMu.Lock()
	defer c.watchMu.Unlock()
	if !c.watchArmed || c.watchDone != nil {
		return // stopped, or watched already
	}
	// The call takes the time it takes: no idle or head deadline. Cleared
	// under the lock, so that stopWatch's deadline comes after.
	c.nc.SetReadDeadline(time.Time{})
	done := make(chan struct{})
	c.watchDone = done
	up := c.watchUp
	go func() {
		defer close(done)
		var b [1]byte
		n, err := c.nc.Read(b[:])
		if n == 1 {
			c.rd.saved, c.rd.hasSaved = b[0], true
		}
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			c.gone.Store(true)
			up.close()
		}
	}()
}

// stopWatch ends the watch of a call, and waits for it when it started.
func (c *gwConn) stopWatch() {
	if !c.watching {
		return
	}
	c.watching = false
	c.waitSince.Store(0)
	c.watchMu.Lock()
	c.watchArmed, c.watchUp = false, nil
	done := c.watchDone
	c.watchDone = nil
	if done != nil {
		c.nc.SetReadDeadline(aLongTimeAgo)
	}
	c.watchMu.Unlock()
	if done != nil {
		<-done
		c.setDeadline(time.Time{})
	}
}
