// Package netlimit bounds what a caller may hold of a listener
// (docs/design.md §5, security defaults): the size of a request head, the
// time to its first byte and to its end, the progress of its body and of an
// answer's writes, and the connections open at once. The registry's HTTP
// API and the node gateway both use it. It imports the standard library
// only.
package netlimit

import (
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Limits bound one listener. A zero field takes its default (Defaults).
type Limits struct {
	// MaxConns is the most connections open at once on the listener; a new
	// one over it is answered at once (see Listener) and closed.
	MaxConns int
	// MaxHeaderBytes bounds a request head (http.Server.MaxHeaderBytes).
	MaxHeaderBytes int
	// HeadTimeout bounds the time from a connection's accept to the end of
	// its first request's head, and from a later request's first byte to
	// the end of its head.
	HeadTimeout time.Duration
	// IdleTimeout closes a kept-alive connection with no request.
	IdleTimeout time.Duration
	// BodyTimeout is the longest wait for the next bytes of a request body:
	// renewed as bytes come, so that a long upload that makes progress is
	// never cut, and a body that stalls is.
	BodyTimeout time.Duration
	// WriteTimeout is the longest time one write of an answer may take: a
	// caller that reads nothing cannot hold the connection.
	WriteTimeout time.Duration
}

// Defaults of Limits.
const (
	DefaultMaxHeaderBytes = 32 << 10
	DefaultHeadTimeout    = 10 * time.Second
	DefaultIdleTimeout    = 2 * time.Minute
	DefaultBodyTimeout    = 30 * time.Second
	DefaultWriteTimeout   = 30 * time.Second
	// maxDefaultConns and minDefaultConns bound DefaultMaxConns.
	maxDefaultConns = 4096
	minDefaultConns = 64
)

// Defaults returns the default limits.
func Defaults() Limits {
	return Limits{
		MaxConns:       DefaultMaxConns(),
		MaxHeaderBytes: DefaultMaxHeaderBytes,
		HeadTimeout:    DefaultHeadTimeout,
		IdleTimeout:    DefaultIdleTimeout,
		BodyTimeout:    DefaultBodyTimeout,
		WriteTimeout:   DefaultWriteTimeout,
	}
}

// WithDefaults returns l with each zero field set to its default.
func (l Limits) WithDefaults() Limits {
	d := Defaults()
	orDefault(&l.MaxConns, d.MaxConns)
	orDefault(&l.MaxHeaderBytes, d.MaxHeaderBytes)
	orDefault(&l.HeadTimeout, d.HeadTimeout)
	orDefault(&l.IdleTimeout, d.IdleTimeout)
	orDefault(&l.BodyTimeout, d.BodyTimeout)
	orDefault(&l.WriteTimeout, d.WriteTimeout)
	return l
}

func orDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// DefaultMaxConns is a quarter of the process's limit of open files,
// within 64 and 4096: a listener full of callers leaves the process files
// for its other listeners, its upstream connections and its logs.
func DefaultMaxConns() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 {
		return maxDefaultConns
	}
	return int(min(max(rl.Cur/4, minDefaultConns), maxDefaultConns))
}

// Server returns an http.Server for h within l: its head size, head and
// idle timeouts, and h's request bodies bounded by BodyTimeout. Serve it on
// Listener(ln, ...), which bounds the connections and the writes.
func (l Limits) Server(h http.Handler) *http.Server {
	l = l.WithDefaults()
	return &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ProgressBody(w, r, l.BodyTimeout)
			h.ServeHTTP(w, r)
		}),
		MaxHeaderBytes:    l.MaxHeaderBytes,
		ReadHeaderTimeout: l.HeadTimeout,
		IdleTimeout:       l.IdleTimeout,
	}
}

// ProgressBody bounds the reading of r's body, if it has one, by d per
// read: the connection's read deadline is set now and moved on as bytes
// come, and cleared once the body is read whole (net/http then reads the
// connection to see the caller go away, and must not time out). A body the
// handler leaves unread is still bounded when net/http discards it after
// the handler. It does nothing when w cannot set deadlines.
func ProgressBody(w http.ResponseWriter, r *http.Request, d time.Duration) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 || d <= 0 {
		return
	}
	rc := http.NewResponseController(w)
	if rc.SetReadDeadline(time.Now().Add(d)) != nil {
		return
	}
	r.Body = &progressBody{rc: rc, body: r.Body, d: d}
}

type progressBody struct {
	rc   *http.ResponseController
	body io.ReadCloser
	d    time.Duration
	done bool
}

func (b *progressBody) Read(p []byte) (int, error) {
	if b.done {
		return b.body.Read(p)
	}
	_ = b.rc.SetReadDeadline(time.Now().Add(b.d))
	n, err := b.body.Read(p)
	if err == io.EOF {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

func (b *progressBody) Close() error { return b.body.Close() }

// Listener returns ln bounded by l: at most l.MaxConns connections open at
// once, and each write to one bounded by l.WriteTimeout. A connection
// accepted over the cap is written reject (nil: nothing; a TLS listener's
// raw connection can take no plain answer) and closed at once, so that a
// caller learns at once rather than wait in the kernel's queue.
func Listener(ln net.Listener, l Limits, reject []byte) net.Listener {
	l = l.WithDefaults()
	return &listener{Listener: ln, max: int64(l.MaxConns), write: l.WriteTimeout, reject: reject}
}

type listener struct {
	net.Listener
	max    int64
	write  time.Duration
	reject []byte
	open   atomic.Int64
}

func (ln *listener) Accept() (net.Conn, error) {
	for {
		nc, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if ln.open.Add(1) > ln.max {
			ln.open.Add(-1)
			Refuse(nc, ln.reject)
			continue
		}
		c := &conn{Conn: nc, ln: ln}
		c.w.Conn, c.w.Timeout = nc, ln.write
		return c, nil
	}
}

// Refuse writes answer to a connection over a cap, if it takes it at once,
// and closes it.
func Refuse(nc net.Conn, answer []byte) {
	if len(answer) > 0 {
		_ = nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		_, _ = nc.Write(answer)
	}
	_ = nc.Close()
}

// conn is a connection of listener: it frees its place when closed.
type conn struct {
	net.Conn
	ln   *listener
	w    Deadline
	once sync.Once
}

func (c *conn) Write(p []byte) (int, error) { return c.w.Write(p) }

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.ln.open.Add(-1) })
	return err
}

func (c *conn) CloseWrite() error { return CloseWrite(c.Conn) }

// CloseWrite half-closes nc when it can, as net/http does before it closes
// a connection with a request body unread: a wrapper of a connection
// passes it on.
func CloseWrite(nc net.Conn) error {
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Deadline writes to W (Conn's own Write when nil) with Conn's write
// deadline at most Timeout ahead. It moves the deadline on only when less
// than half of Timeout is left, so that a busy connection costs no timer
// change per write: each write may take from Timeout/2 to Timeout.
type Deadline struct {
	Conn     net.Conn
	W        io.Writer
	Timeout  time.Duration
	deadline atomic.Int64 // Unix ns
}

func (d *Deadline) Write(p []byte) (int, error) {
	if d.Timeout > 0 {
		now := time.Now()
		if time.Duration(d.deadline.Load()-now.UnixNano()) < d.Timeout/2 {
			dl := now.Add(d.Timeout)
			d.deadline.Store(dl.UnixNano())
			_ = d.Conn.SetWriteDeadline(dl)
		}
	}
	if d.W != nil {
		return d.W.Write(p)
	}
	return d.Conn.Write(p)
}
