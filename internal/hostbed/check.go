package hostbed

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/internal/linearize"
	version "github.com/hashicorp/go-version"
)

// Summary is what the checks after a run found.
type Summary struct {
	Seed     uint64
	Duration time.Duration
	Faults   int
	ByKind   map[Kind]int

	// Registry.
	AckedWrites, LostWrites int
	Lost                    []string
	Diverged                []string // servers whose state differs from the leader's
	LinOps, LinAmbiguous    int
	LinKeys                 int      // keys whose history was checked linearizable
	LinIllegal, LinUnknown  []string // keys that were not, or not in time
	Linearizable            porcupine.CheckResult
	LinFile                 string

	// Calls.
	Calls, CallsOK, CallsFailed, CallsExcused, WrongAnswers int
	FailedSamples, WrongSamples                             []string

	// Containers and convergence.
	Restarts                   int
	RestartedContainers        []string
	MaxConverge                time.Duration
	NotConverged, SlowConverge int
	RolloutVersions            int
	FinalConvergeErr           string
}

// ConvergeBound is the most a heal may take to give a leader and ready
// nodes.
const ConvergeBound = 10 * time.Second

// OK reports whether every check passed.
func (s *Summary) OK() bool {
	return s.LostWrites == 0 && len(s.Diverged) == 0 && s.Linearizable == porcupine.Ok && s.CallsFailed == 0 &&
		s.WrongAnswers == 0 && s.Restarts == 0 && s.NotConverged == 0 && s.SlowConverge == 0 && s.FinalConvergeErr == ""
}

// Verdict is one line: PASS or FAIL, with the seed and the figures.
func (s *Summary) Verdict() string {
	v := "PASS"
	if !s.OK() {
		v = "FAIL"
	}
	return fmt.Sprintf("%s seed=%d duration=%s faults=%d lost_writes=%d/%d diverged=%d linearizable=%s (%d ops, %d keys, %d ambiguous) calls=%d failed=%d excused=%d wrong=%d restarts=%d max_converge=%s not_converged=%d over_%s=%d",
		v, s.Seed, s.Duration.Round(time.Second), s.Faults, s.LostWrites, s.AckedWrites, len(s.Diverged), linResult(s.Linearizable),
		s.LinOps, s.LinKeys+len(s.LinIllegal)+len(s.LinUnknown), s.LinAmbiguous, s.Calls, s.CallsFailed, s.CallsExcused, s.WrongAnswers, s.Restarts,
		s.MaxConverge.Round(time.Millisecond), s.NotConverged, ConvergeBound, s.SlowConverge)
}

func linResult(r porcupine.CheckResult) string {
	switch r {
	case porcupine.Ok:
		return "yes"
	case porcupine.Illegal:
		return "NO"
	}
	return "unknown"
}

// Report is the summary in several lines: the verdict, then what failed.
func (s *Summary) Report() string {
	var b strings.Builder
	fmt.Fprintf(&b, "hostbed chaos: seed %d, %s, %d faults %v, %d versions rolled out\n", s.Seed, s.Duration.Round(time.Second), s.Faults, s.ByKind, s.RolloutVersions)
	for _, l := range s.Lost {
		fmt.Fprintf(&b, "  lost: %s\n", l)
	}
	for _, d := range s.Diverged {
		fmt.Fprintf(&b, "  diverged: %s\n", d)
	}
	if s.LinFile != "" {
		fmt.Fprintf(&b, "  not linearizable: keys %v, not checked in time: keys %v; their histories: %s\n", s.LinIllegal, s.LinUnknown, s.LinFile)
	}
	for _, f := range s.FailedSamples {
		fmt.Fprintf(&b, "  failed call: %s\n", f)
	}
	for _, f := range s.WrongSamples {
		fmt.Fprintf(&b, "  wrong answer: %s\n", f)
	}
	for _, r := range s.RestartedContainers {
		fmt.Fprintf(&b, "  restarted: %s\n", r)
	}
	if s.FinalConvergeErr != "" {
		fmt.Fprintf(&b, "  not converged at the end: %s\n", s.FinalConvergeErr)
	}
	b.WriteString(s.Verdict())
	return b.String()
}

// CheckRegistry checks, once the cluster has converged, that every
// acknowledged write is on every server and that all servers hold the same
// services and containers as the leader, and checks the history.
func (s *Summary) CheckRegistry(ctx context.Context, c *Cluster, acked map[string]uint64, h *linearize.History) {
	type view struct {
		versions   map[string]uint64 // service@version -> modify index
		containers map[string]uint64
	}
	read := func(cl *api.Client) (view, error) {
		v := view{versions: map[string]uint64{}, containers: map[string]uint64{}}
		q := &api.QueryOptions{AllowStale: true}
		svcs, _, err := cl.Services().List(ctx, q)
		if err != nil {
			return v, err
		}
		for _, svc := range svcs {
			full, _, err := cl.Services().Info(ctx, svc.Name, q)
			if err != nil {
				return v, err
			}
			for _, ver := range full.Versions {
				v.versions[svc.Name+"@"+ver.Version] = ver.ModifyIndex
			}
		}
		cts, _, err := cl.Containers().List(ctx, "", q)
		if err != nil {
			return v, err
		}
		for _, ct := range cts {
			v.containers[ct.ID] = ct.ModifyIndex
		}
		return v, nil
	}
	leader := c.Leader(ctx)
	if leader == nil {
		s.Diverged = append(s.Diverged, "no leader to compare with")
		return
	}
	// Wait for the followers to apply what the leader has: a follower
	// may lag a little behind the leader's commit index.
	var want view
	for _, srv := range c.Servers {
		var got view
		var err error
		var diff string
		_ = poll(ctx, 10*time.Second, srv.ID+" to hold the leader's state", func() bool {
			if want, err = read(c.ServerClient(leader)); err != nil {
				diff = "leader: " + err.Error()
				return false
			}
			if got, err = read(c.ServerClient(srv)); err != nil {
				diff = err.Error()
				return false
			}
			diff = diffMaps(got.versions, want.versions) + diffMaps(got.containers, want.containers)
			return diff == ""
		})
		if diff != "" {
			s.Diverged = append(s.Diverged, srv.ID+": "+diff)
			continue
		}
		for ver, idx := range acked {
			s.AckedWrites++
			if got.versions["greeter@"+ver] == 0 {
				s.LostWrites++
				s.Lost = append(s.Lost, fmt.Sprintf("greeter@%s (acknowledged at index %d) missing on %s", ver, idx, srv.ID))
			}
		}
	}
	ops := h.Operations()
	s.LinOps = len(ops)
	for _, op := range ops {
		if op.Output.(linearize.Output).Ambiguous {
			s.LinAmbiguous++
		}
	}
	s.LinKeys, s.LinIllegal, s.LinUnknown = linearize.KeyResults(ops, 20*time.Second)
	switch {
	case len(s.LinIllegal) > 0:
		s.Linearizable = porcupine.Illegal
	case len(s.LinUnknown) > 0:
		s.Linearizable = porcupine.Unknown
	default:
		s.Linearizable = porcupine.Ok
	}
	if s.Linearizable != porcupine.Ok {
		// The keys' histories, to read or check again.
		var bad []porcupine.Operation
		for _, op := range ops {
			k := op.Input.(linearize.Input).Key
			if slices.Contains(s.LinIllegal, k) || slices.Contains(s.LinUnknown, k) {
				bad = append(bad, op)
			}
		}
		s.LinFile = filepath.Join(c.Bed.Dir(), "registers.txt")
		_ = os.WriteFile(s.LinFile, []byte(linearize.Dump(bad, 20*time.Second)), 0o644)
	}
}

func diffMaps(got, want map[string]uint64) string {
	var out []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			out = append(out, "missing "+k)
		} else if g != w {
			out = append(out, fmt.Sprintf("%s at index %d, leader %d", k, g, w))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			out = append(out, "extra "+k)
		}
	}
	slices.Sort(out)
	if len(out) > 5 {
		out = append(out[:5], fmt.Sprintf("and %d more", len(out)-5))
	}
	return strings.Join(out, "; ")
}

// CheckCalls checks every call of a client: an answer must come from a
// version whose clients range admits the client's version (by
// Coexist-Served-By against the ranges declared), and a call may fail only
// while its client was cut off from every agent.
func (s *Summary) CheckCalls(client string, calls []CallRecord, ranges map[string]string, windows []Window) {
	me := version.Must(version.NewVersion(ClientVersion))
	for _, call := range calls {
		s.Calls++
		if call.OK {
			ref, _, _ := strings.Cut(call.ServedBy, " ")
			_, ver, _ := strings.Cut(ref, "@")
			rng, ok := ranges[ver]
			var why string
			if !ok {
				why = "an undeclared version"
			} else if cons, err := version.NewConstraint(rng); err != nil || !cons.Check(me) {
				why = fmt.Sprintf("a version for clients %q", rng)
			}
			if why != "" {
				s.WrongAnswers++
				if len(s.WrongSamples) < 10 {
					s.WrongSamples = append(s.WrongSamples, fmt.Sprintf("%s at %s served by %q, %s", client, stamp(call.Start), call.ServedBy, why))
				}
				continue
			}
			s.CallsOK++
			continue
		}
		excused := false
		for _, w := range windows {
			if slices.Contains(w.CutOff, client) && call.Start <= w.Healed.UnixNano() && call.End >= w.Start.UnixNano() {
				excused = true
			}
		}
		if excused {
			s.CallsExcused++
			continue
		}
		s.CallsFailed++
		if len(s.FailedSamples) < 10 {
			s.FailedSamples = append(s.FailedSamples, fmt.Sprintf("%s at %s (%s, during %s): %s", client, stamp(call.Start),
				time.Duration(call.End-call.Start).Round(time.Millisecond), during(windows, call), call.Err))
		}
	}
}

func stamp(ns int64) string { return time.Unix(0, ns).Format("15:04:05.000") }

// during names the fault a call overlapped, or the last one before it.
func during(windows []Window, call CallRecord) string {
	last := "no fault yet"
	for _, w := range windows {
		if call.End >= w.Start.UnixNano() && call.Start <= w.Healed.UnixNano() {
			return "fault " + w.Fault.String()
		}
		if w.Healed.UnixNano() < call.Start {
			last = fmt.Sprintf("%s after the heal of %s", time.Duration(call.Start-w.Healed.UnixNano()).Round(time.Millisecond), w.Fault.String())
		}
	}
	return last
}

// CheckContainers counts restarts: the greeter never exits by itself, so
// every restart is one that did not have to happen.
func (s *Summary) CheckContainers(ctx context.Context, c *Cluster) error {
	cts, _, err := c.API().Containers().List(ctx, "", nil)
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	for _, ct := range cts {
		if ct.Status != nil && ct.Status.Restarts > 0 {
			s.Restarts += ct.Status.Restarts
			s.RestartedContainers = append(s.RestartedContainers, fmt.Sprintf("%s on %s: %d restarts (%s)", ct.ID, ct.Node, ct.Status.Restarts, ct.Status.Message))
		}
	}
	return nil
}

// CheckWindows counts the faults and the heals that did not converge within
// ConvergeBound.
func (s *Summary) CheckWindows(windows []Window) {
	s.ByKind = map[Kind]int{}
	for _, w := range windows {
		s.Faults++
		s.ByKind[w.Kind]++
		switch {
		case w.Converged < 0:
			s.NotConverged++
		case w.Converged > ConvergeBound:
			s.SlowConverge++
		}
		s.MaxConverge = max(s.MaxConverge, w.Converged)
	}
}
