package hostbed

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// A slow link: the machine has no netem, so a host's incoming connections
// to the bed's ports are redirected (nft, inside its namespace) to a proxy
// of the bed's own running there, which passes every chunk on after a
// delay, both ways. Connections made before the redirect stay direct.

// proxyOffset is added to a port to give the proxy's port for it.
const proxyOffset = 10000

// proxiedPorts are the ports a slow host's proxy takes over.
var proxiedPorts = []int{httpPort, raftPort, gatewayPort}

// Slow delays by d what reaches h from the bed over new connections to the
// bed's ports, and what h answers on them; d of 0 ends it. The first call
// starts h's proxy.
func (b *Bed) Slow(h *Host, d time.Duration) error {
	delayFile := filepath.Join(h.Dir(), "proxy-delay")
	if err := os.WriteFile(delayFile, []byte(strconv.FormatInt(int64(d), 10)), 0o644); err != nil {
		return fmt.Errorf("slow %s: %w", h.Name, err)
	}
	b.mu.Lock()
	var proxy *Proc
	for _, p := range b.procs {
		if p.Host == h && p.Name == "proxy" {
			proxy = p
		}
	}
	b.mu.Unlock()
	if proxy == nil && d > 0 {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("slow %s: %w", h.Name, err)
		}
		proxy = h.Command("proxy", []string{EnvRole + "=proxy", "CXBED_PROXY_IP=" + h.IP, "CXBED_PROXY_DELAY=" + delayFile}, self)
		if err := proxy.Start(); err != nil {
			return err
		}
		addr := fmt.Sprintf("%s:%d", h.IP, httpPort+proxyOffset)
		if err := poll(context.Background(), 5*time.Second, "the proxy of "+h.Name, func() bool { return h.CanDial(addr) }); err != nil {
			return err
		}
	}
	return b.editRules(h, func(r *hostRules) { r.slow = d > 0 })
}

// RunProxy is the proxy helper: it listens on the proxied ports plus
// proxyOffset on ip and passes each connection to ip's own port, every
// chunk held for the delay that the file names (nanoseconds), read anew
// every 100ms.
func RunProxy(ip, delayFile string) error {
	var delay atomic.Int64
	load := func() {
		if b, err := os.ReadFile(delayFile); err == nil {
			if v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
				delay.Store(v)
			}
		}
	}
	load()
	go func() {
		for range time.Tick(100 * time.Millisecond) {
			load()
		}
	}()
	errs := make(chan error, len(proxiedPorts))
	for _, port := range proxiedPorts {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port+proxyOffset)))
		if err != nil {
			return err
		}
		target := net.JoinHostPort(ip, strconv.Itoa(port))
		go func() {
			for {
				in, err := l.Accept()
				if err != nil {
					errs <- err
					return
				}
				go func() {
					defer in.Close()
					out, err := net.DialTimeout("tcp", target, 2*time.Second)
					if err != nil {
						return
					}
					defer out.Close()
					done := make(chan struct{}, 2)
					go func() { pipeSlow(out, in, &delay); done <- struct{}{} }()
					go func() { pipeSlow(in, out, &delay); done <- struct{}{} }()
					<-done
				}()
			}
		}()
	}
	return <-errs
}

// pipeSlow copies src to dst, each chunk written delay after it was read,
// in order.
func pipeSlow(dst, src net.Conn, delay *atomic.Int64) {
	type chunk struct {
		at time.Time
		b  []byte
	}
	q := make(chan chunk, 256)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				q <- chunk{time.Now(), buf[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range q {
		time.Sleep(time.Until(c.at.Add(time.Duration(delay.Load()))))
		if _, err := dst.Write(c.b); err != nil {
			_, _ = io.Copy(io.Discard, src)
			return
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}
