package raftregistry

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// errPartitioned is what an RPC across a cut link fails with.
var errPartitioned = errors.New("faultnet: link is partitioned")

// faultNet is an in-memory network of raft.InmemTransports with faults:
// a node can be isolated (every RPC to and from it fails), links can be cut
// one way or both, and RPCs can be delayed. Each node's raft talks through a
// faultTransport, which checks the network before handing the RPC to the
// InmemTransport underneath.
//
// The check happens when an RPC is sent; a response to a request that was
// delivered before a cut still arrives, like a packet already on the wire.
type faultNet struct {
	mu       sync.Mutex
	inner    map[raft.ServerAddress]*raft.InmemTransport
	isolated map[raft.ServerAddress]bool
	cut      map[[2]raft.ServerAddress]bool // directed: {from, to}
	delay    func(from, to raft.ServerAddress, rpc any) time.Duration

	sent    atomic.Int64
	dropped atomic.Int64
}

func newFaultNet() *faultNet {
	return &faultNet{
		inner:    map[raft.ServerAddress]*raft.InmemTransport{},
		isolated: map[raft.ServerAddress]bool{},
		cut:      map[[2]raft.ServerAddress]bool{},
	}
}

// Transport returns a new transport for addr, connected both ways to every
// other transport of the network. A transport already registered under addr
// (a crashed node that restarts) is closed and replaced.
func (n *faultNet) Transport(addr raft.ServerAddress) *faultTransport {
	_, in := raft.NewInmemTransport(addr)
	n.mu.Lock()
	defer n.mu.Unlock()
	if old := n.inner[addr]; old != nil {
		_ = old.Close()
	}
	for a, other := range n.inner {
		if a == addr {
			continue
		}
		other.Disconnect(addr)
		other.Connect(addr, in)
		in.Connect(a, other)
	}
	n.inner[addr] = in
	return &faultTransport{net: n, in: in}
}

// Isolate cuts every link to and from addr.
func (n *faultNet) Isolate(addr raft.ServerAddress) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.isolated[addr] = true
}

// Heal undoes Isolate.
func (n *faultNet) Heal(addr raft.ServerAddress) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.isolated, addr)
}

// Partition cuts every link between two different groups, both ways. Nodes
// in no group keep all their links.
func (n *faultNet) Partition(groups ...[]raft.ServerAddress) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, g := range groups {
		for j, h := range groups {
			if i == j {
				continue
			}
			for _, a := range g {
				for _, b := range h {
					n.cut[[2]raft.ServerAddress{a, b}] = true
				}
			}
		}
	}
}

// CutLink cuts the link from one node to another, in that direction only.
func (n *faultNet) CutLink(from, to raft.ServerAddress) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut[[2]raft.ServerAddress{from, to}] = true
}

// SetDelay sets the function that decides how long each RPC is held before
// it is sent; nil sends at once.
func (n *faultNet) SetDelay(f func(from, to raft.ServerAddress, rpc any) time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.delay = f
}

// HealAll removes every isolation, cut and delay.
func (n *faultNet) HealAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.isolated)
	clear(n.cut)
	n.delay = nil
}

// Close closes every transport of the network (and so their pipelines).
func (n *faultNet) Close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, in := range n.inner {
		_ = in.Close()
	}
}

// Blocked reports whether an RPC from one node to another would be dropped.
func (n *faultNet) Blocked(from, to raft.ServerAddress) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.blockedLocked(from, to)
}

func (n *faultNet) blockedLocked(from, to raft.ServerAddress) bool {
	return n.isolated[from] || n.isolated[to] || n.cut[[2]raft.ServerAddress{from, to}]
}

// admit applies the delay and the partitions to one RPC about to be sent.
func (n *faultNet) admit(from, to raft.ServerAddress, rpc any) error {
	n.sent.Add(1)
	n.mu.Lock()
	delay := n.delay
	n.mu.Unlock()
	if delay != nil {
		if d := delay(from, to, rpc); d > 0 {
			time.Sleep(d)
		}
	}
	if n.Blocked(from, to) {
		n.dropped.Add(1)
		return fmt.Errorf("%w: %s -> %s", errPartitioned, from, to)
	}
	return nil
}

// faultTransport is one node's view of a faultNet: a raft.Transport that
// checks the network, then sends through its InmemTransport.
type faultTransport struct {
	net *faultNet
	in  *raft.InmemTransport
}

var (
	_ raft.Transport   = (*faultTransport)(nil)
	_ raft.WithPreVote = (*faultTransport)(nil)
	_ raft.WithClose   = (*faultTransport)(nil)
)

func (t *faultTransport) Consumer() <-chan raft.RPC          { return t.in.Consumer() }
func (t *faultTransport) LocalAddr() raft.ServerAddress      { return t.in.LocalAddr() }
func (t *faultTransport) SetHeartbeatHandler(func(raft.RPC)) {}
func (t *faultTransport) Close() error                       { return t.in.Close() }

func (t *faultTransport) EncodePeer(id raft.ServerID, addr raft.ServerAddress) []byte {
	return t.in.EncodePeer(id, addr)
}

func (t *faultTransport) DecodePeer(b []byte) raft.ServerAddress { return t.in.DecodePeer(b) }

func (t *faultTransport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	if err := t.net.admit(t.LocalAddr(), target, nil); err != nil {
		return nil, err
	}
	p, err := t.in.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	return &faultPipeline{t: t, target: target, in: p}, nil
}

func (t *faultTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	if err := t.net.admit(t.LocalAddr(), target, args); err != nil {
		return err
	}
	return t.in.AppendEntries(id, target, args, resp)
}

func (t *faultTransport) RequestVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	if err := t.net.admit(t.LocalAddr(), target, args); err != nil {
		return err
	}
	return t.in.RequestVote(id, target, args, resp)
}

func (t *faultTransport) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	if err := t.net.admit(t.LocalAddr(), target, args); err != nil {
		return err
	}
	return t.in.RequestPreVote(id, target, args, resp)
}

func (t *faultTransport) InstallSnapshot(id raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	if err := t.net.admit(t.LocalAddr(), target, args); err != nil {
		return err
	}
	return t.in.InstallSnapshot(id, target, args, resp, data)
}

func (t *faultTransport) TimeoutNow(id raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	if err := t.net.admit(t.LocalAddr(), target, args); err != nil {
		return err
	}
	return t.in.TimeoutNow(id, target, args, resp)
}

// faultPipeline checks the network for every pipelined AppendEntries; raft
// closes a pipeline whose send fails and falls back to plain AppendEntries.
type faultPipeline struct {
	t      *faultTransport
	target raft.ServerAddress
	in     raft.AppendPipeline
}

func (p *faultPipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	if err := p.t.net.admit(p.t.LocalAddr(), p.target, args); err != nil {
		return nil, err
	}
	return p.in.AppendEntries(args, resp)
}

func (p *faultPipeline) Consumer() <-chan raft.AppendFuture { return p.in.Consumer() }
func (p *faultPipeline) Close() error                       { return p.in.Close() }
