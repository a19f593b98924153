package hostbed

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/internal/linearize"
	"github.com/hashicorp/go-hclog"
)

// ClientVersion is the version the bed's clients call as.
const ClientVersion = "1.5.0"

// wrongRange admits no client of the bed.
const wrongRange = ">= 2.0"

// Rollouts adds a greeter version every Every, with a container on every
// agent, and retires the oldest when more than Keep are active; every
// third version admits no client of the bed (clients ">= 2.0"), so a call
// it serves is a wrong answer. Each step is retried on the next tick until
// the registry acknowledges it.
type Rollouts struct {
	C     *Cluster
	Log   hclog.Logger
	Every time.Duration
	Keep  int

	mu       sync.Mutex
	versions []*rollout
	// Acked are the versions whose declare the registry acknowledged, with
	// the index it answered.
	Acked  map[string]uint64
	Ranges map[string]string // version -> its clients range
	Errors int
}

type rollout struct {
	ver, clients string
	declared     bool
	containers   map[string]bool // node -> declared
	retired      bool
	deleted      map[string]bool // node -> deleted
}

// Run rolls out until ctx ends.
func (r *Rollouts) Run(ctx context.Context) {
	r.mu.Lock()
	r.Acked, r.Ranges = map[string]uint64{}, map[string]string{}
	r.mu.Unlock()
	n := 0
	tick := time.NewTicker(r.Every)
	defer tick.Stop()
	for {
		active := 0
		for _, v := range r.versions {
			if !v.retired {
				active++
			}
		}
		if active <= r.Keep {
			n++
			clients := ">= 1.0, < 2.0"
			if n%3 == 0 {
				clients = wrongRange
			}
			r.versions = append(r.versions, &rollout{ver: fmt.Sprintf("1.%d.0", n), clients: clients,
				containers: map[string]bool{}, deleted: map[string]bool{}})
		}
		r.step(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (r *Rollouts) step(ctx context.Context) {
	c := r.C.API()
	running := r.running(ctx)
	try := func(what string, f func(ctx context.Context) error) bool {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if err := f(ctx); err != nil {
			r.mu.Lock()
			r.Errors++
			r.mu.Unlock()
			r.Log.Info("rollout step failed; retried next tick", "step", what, "error", err)
			return false
		}
		return true
	}
	active := 0
	for _, v := range r.versions {
		if !v.retired {
			active++
		}
	}
	for i, v := range r.versions {
		if !v.declared {
			var idx uint64
			// Recorded before the call: a declare whose answer is lost
			// may have been applied, and a version served is known.
			r.mu.Lock()
			r.Ranges[v.ver] = v.clients
			r.mu.Unlock()
			if !try("declare "+v.ver, func(ctx context.Context) error {
				sv, _, err := c.Services().Declare(ctx, "greeter", v.ver, api.VersionRequest{Clients: v.clients}, nil)
				if err == nil {
					idx = sv.ModifyIndex
				}
				return err
			}) {
				return
			}
			v.declared = true
			r.mu.Lock()
			r.Acked[v.ver] = idx
			r.mu.Unlock()
		}
		if v.retired {
			for _, a := range r.C.Agents {
				if v.deleted[a.ID] {
					continue
				}
				id := containerID(v.ver, a.ID)
				v.deleted[a.ID] = try("delete "+id, func(ctx context.Context) error {
					_, _, err := c.Containers().Delete(ctx, id, nil)
					var se *api.StatusError
					if errors.As(err, &se) && se.Code == 404 {
						return nil
					}
					return err
				})
			}
			continue
		}
		for _, a := range r.C.Agents {
			if !v.containers[a.ID] {
				v.containers[a.ID] = try("container "+v.ver+" on "+a.ID, func(ctx context.Context) error {
					_, err := r.C.Greeter(ctx, containerID(v.ver, a.ID), a.ID, v.ver)
					return err
				})
			}
		}
		// Retire the oldest active version once a newer one is on every
		// agent and more than Keep are active.
		if active > r.Keep && i < len(r.versions)-1 && r.otherCompatibleRuns(v, running) {
			if try("retire "+v.ver, func(ctx context.Context) error {
				_, _, err := c.Services().Retire(ctx, "greeter", v.ver, nil)
				return err
			}) {
				v.retired = true
				active--
				r.Log.Info("rollout", "retired", v.ver)
			}
		}
	}
}

// running returns, by version, on how many agents its container runs; nil
// when the registry did not answer.
func (r *Rollouts) running(ctx context.Context) map[string]int {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	cts, _, err := r.C.API().Containers().List(ctx, "", nil)
	if err != nil {
		return nil
	}
	out := map[string]int{}
	for _, ct := range cts {
		if ct.Status != nil && ct.Status.State == api.ContainerRunning && len(ct.Services) == 1 {
			out[ct.Services[0].Version]++
		}
	}
	return out
}

// otherCompatibleRuns reports whether a version other than v that admits
// the bed's clients is active and runs on every agent: retiring v then
// leaves the clients a version to call.
func (r *Rollouts) otherCompatibleRuns(v *rollout, running map[string]int) bool {
	for _, o := range r.versions {
		if o != v && !o.retired && o.clients != wrongRange && running[o.ver] == len(r.C.Agents) {
			return true
		}
	}
	return false
}

func containerID(ver, node string) string {
	return "g-" + strings.ReplaceAll(ver, ".", "-") + "-" + node
}

// Registers reads and writes registers of the registry from the control
// host and records the history: a write declares version 1.0.0 of service
// "lin-<epoch>-<k>" with clients ">= 1.<seq>"; a read is a consistent read
// of it. The workers move to fresh keys every Epoch, as Jepsen's
// independent keys do, so that each key's history stays short enough to
// check: a write whose outcome is unknown stays open to the end of its
// key's history, and a long one with many would not be checked in time.
type Registers struct {
	C       *Cluster
	Keys    int
	Workers int
	Pace    time.Duration // between one worker's operations
	Epoch   time.Duration // how long the workers keep to one set of keys
	Seed    uint64

	H                                 *linearize.History
	mu                                sync.Mutex
	Writes, Reads, Ambiguous, NotSent int
	ackedMu                           sync.Mutex
	acked                             map[string]string // key -> last acknowledged value (by return)
}

// Run runs the workers until ctx ends.
func (r *Registers) Run(ctx context.Context) {
	r.H = linearize.NewWallHistory()
	var wg sync.WaitGroup
	seq := 0
	var seqMu sync.Mutex
	start := time.Now()
	for w := range r.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(r.Seed, uint64(w)))
			c := r.C.API()
			id := r.H.NewClient()
			for ctx.Err() == nil {
				key := fmt.Sprintf("lin-%d-%d", time.Since(start)/r.Epoch, rng.IntN(r.Keys))
				opCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
				if rng.IntN(2) == 0 {
					seqMu.Lock()
					seq++
					val := fmt.Sprintf(">= 1.%d", seq)
					seqMu.Unlock()
					in := linearize.Input{Write: true, Key: key, Value: val}
					call := r.H.Tick()
					_, _, err := c.Services().Declare(opCtx, key, "1.0.0", api.VersionRequest{Clients: val}, nil)
					ret := r.H.Tick()
					r.mu.Lock()
					switch {
					case err == nil:
						r.H.Record(id, in, linearize.Output{}, call, ret)
						r.Writes++
					case notSent(err):
						r.NotSent++
					default:
						// Maybe applied, maybe later: pending for ever,
						// and the worker goes on as a new client.
						r.H.RecordOn(id, in, linearize.Output{Ambiguous: true}, call, 0, err.Error())
						r.Ambiguous++
						id = r.H.NewClient()
					}
					r.mu.Unlock()
				} else {
					call := r.H.Tick()
					s, _, err := c.Services().Info(opCtx, key, &api.QueryOptions{RequireConsistent: true})
					ret := r.H.Tick()
					var out linearize.Output
					var se *api.StatusError
					switch {
					case err == nil:
						for _, v := range s.Versions {
							if v.Version == "1.0.0" {
								out.Value = v.Clients
							}
						}
					case errors.As(err, &se) && se.Code == 404:
						// never written
					default:
						cancel()
						continue // a failed read has no effect
					}
					r.H.Record(id, linearize.Input{Key: key}, out, call, ret)
					r.mu.Lock()
					r.Reads++
					r.mu.Unlock()
				}
				cancel()
				select {
				case <-ctx.Done():
				case <-time.After(r.Pace):
				}
			}
		}()
	}
	wg.Wait()
}

// notSent reports whether a write's error proves it never reached a
// server: every server refused the connection.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// onEvery reports whether all n nodes are marked in m.
func onEvery(m map[string]bool, n int) bool {
	k := 0
	for _, ok := range m {
		if ok {
			k++
		}
	}
	return k == n
}
