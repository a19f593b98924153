package driver

import (
	"fmt"
	"net"
	"strconv"
	"sync"
)

// Ports hands out ports of [min, max] to containers. One pool may serve
// several drivers of one agent (ExecConfig.Ports, OCIConfig.Ports), so that
// no two of its containers are ever given the same port; it is safe for
// concurrent use. A port is held from Start (or Recover) until its
// container exits, and is never handed out twice while held. Before a port
// is handed out it is also bound briefly, so that a port some other program
// listens on is skipped. The search starts after the port handed out last,
// so a port just given back is reused as late as possible.
type Ports struct {
	mu       sync.Mutex
	min, max int
	next     int
	held     map[int]string // port -> container id
	// free reports whether the port can be bound now; a field so that the
	// unit tests can program busy ports.
	free func(port int) bool
}

// NewPorts makes a pool of the ports min to max.
func NewPorts(min, max int) *Ports { return newPortPool(min, max) }

// portsOf is shared, or else a pool of its own of min to max.
func portsOf(shared *Ports, min, max int) *Ports {
	if shared != nil {
		return shared
	}
	return newPortPool(min, max)
}

func newPortPool(min, max int) *Ports {
	return &Ports{min: min, max: max, next: min, held: map[int]string{}, free: canBind}
}

// alloc holds and returns a free port for id.
func (p *Ports) alloc(id string) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.max - p.min + 1
	for i := 0; i < n; i++ {
		port := p.min + (p.next-p.min+i)%n
		if _, ok := p.held[port]; ok {
			continue
		}
		if !p.free(port) {
			continue
		}
		p.held[port] = id
		p.next = port + 1
		if p.next > p.max {
			p.next = p.min
		}
		return port, nil
	}
	return 0, fmt.Errorf("%w %d-%d (%d held by containers)", ErrNoPort, p.min, p.max, len(p.held))
}

// hold marks port as id's (a re-adopted container keeps its port). It
// returns the id that held it before, if another.
func (p *Ports) hold(port int, id string) (previous string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	prev := p.held[port]
	p.held[port] = id
	if prev == id {
		return ""
	}
	return prev
}

// release gives port back, if id holds it.
func (p *Ports) release(port int, id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held[port] == id {
		delete(p.held, port)
	}
}

// canBind reports whether 127.0.0.1:port can be listened on now.
func canBind(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}
