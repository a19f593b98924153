package sim

import (
	"cmp"
	"fmt"
	"io"
	"math/bits"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is what one run found.
type Result struct {
	Scenario  string
	Seed      uint64
	TraceHash uint64
	// Violations holds the first violations (Options.MaxViolations);
	// ViolationCounts counts them all.
	Violations         []Violation
	ViolationCounts    map[Invariant]int
	DeterminismChecked bool

	Calls, Failed, Retries, DialErrors int64
	// Every failed call is counted once, in one of four (docs/design.md
	// §9, invariant 2). Judged: held to Available (a violation when the
	// caller had a candidate; no violation when it had none while the
	// fleet was offering it a version, or its cohort expects to be
	// unserved). Excused: touched by a fault, killed by a drain timeout,
	// or failed for a call it made (judged on its own). StrandedByForce:
	// nothing served the caller after a step forced a retirement.
	// Unjudged: nothing served the caller and nothing explains why; each
	// is also a violation of Available, so a run with one is not OK.
	Judged, Excused, StrandedByForce, Unjudged int64
	FailedByReason                             map[string]int64
	PerVersion                                 []VersionCalls
	// PerCohort splits the calls and failures by caller, sorted by name.
	PerCohort []CohortCalls
	// Latencies of successful calls, in virtual time, retries included.
	P50, P90, P99, Max time.Duration

	Converged      bool
	ConvergedAfter time.Duration // from LastChange
	ConvergeBound  time.Duration
	LastChange     time.Duration

	Restarts      int // container starts after the first
	FaultRestarts int // of which after a fault; the others follow a desired change
	NodeRestarts  int
	DrainTimeouts int
	// InflightReports counts the status reports the registry accepted that
	// changed only calls in flight (inflight_report_interval).
	InflightReports int

	Events  uint64
	Virtual time.Duration
	Wall    time.Duration

	Faults        []FaultWindow
	CommandErrors []string
	// Refused are the steps the registry refused because they would
	// strand a live cohort (docs/design.md §5), with its error.
	Refused []string
	Notes   []string
	// Warnings are the scenario's (Scenario.Warnings).
	Warnings  []string
	Chart     *Chart
	Snapshots []Snapshot

	latency histogram
	byVer   map[int32]int64
	// cohortIdx maps a caller identity (clientKey) to its entry in
	// PerCohort, plus one; 0: none yet.
	cohortIdx []int32
}

// CohortCalls counts one caller's calls, and its failed calls in the four
// kinds of Result (Judged, Excused, StrandedByForce, Unjudged). A caller is
// a cohort, by its name, or a service version calling in turn, as
// "service@version".
type CohortCalls struct {
	Cohort string
	// Chain: the caller is a service version calling in turn.
	Chain                                      bool
	Calls, Failed                              int64
	Judged, Excused, StrandedByForce, Unjudged int64
	// Violations counts the failed calls that violated Available: judged
	// with a candidate the whole time, or unjudged.
	Violations int64
}

// cohortOf is the entry of caller key in PerCohort.
func (r *Result) cohortOf(s *world, key int32) *CohortCalls {
	if int(key) >= len(r.cohortIdx) {
		r.cohortIdx = append(r.cohortIdx, make([]int32, int(key)+1-len(r.cohortIdx))...)
	}
	if i := r.cohortIdx[key]; i > 0 {
		return &r.PerCohort[i-1]
	}
	ck := s.ckeys[key]
	name, chain := ck.name, ck.chainOf >= 0
	if chain {
		name = s.vers[ck.chainOf].ref
	}
	for i := range r.PerCohort {
		if r.PerCohort[i].Cohort == name {
			r.cohortIdx[key] = int32(i + 1)
			return &r.PerCohort[i]
		}
	}
	r.PerCohort = append(r.PerCohort, CohortCalls{Cohort: name, Chain: chain})
	r.cohortIdx[key] = int32(len(r.PerCohort))
	return &r.PerCohort[len(r.PerCohort)-1]
}

// VersionCalls counts the calls a version served.
type VersionCalls struct {
	Service, Version string
	Calls            int64
}

// OK reports whether no invariant was violated.
func (r *Result) OK() bool {
	for _, n := range r.ViolationCounts {
		if n > 0 {
			return false
		}
	}
	return true
}

// TraceHex is the trace hash as 16 lowercase hexadecimal digits.
func (r *Result) TraceHex() string { return hashHex(r.TraceHash) }

// EventsPerSecond is the simulator's own speed in this run.
func (r *Result) EventsPerSecond() float64 {
	if r.Wall <= 0 {
		return 0
	}
	return float64(r.Events) / r.Wall.Seconds()
}

func (r *Result) served(s *world, ver int32) {
	if r.byVer == nil {
		r.byVer = map[int32]int64{}
	}
	r.byVer[ver]++
}

func (r *Result) finalize(s *world) {
	slices.SortFunc(r.PerCohort, func(a, b CohortCalls) int { return cmp.Compare(a.Cohort, b.Cohort) })
	r.cohortIdx = nil
	r.PerVersion = r.PerVersion[:0]
	for _, v := range s.vers {
		if n := r.byVer[v.id]; n > 0 {
			r.PerVersion = append(r.PerVersion, VersionCalls{Service: v.service, Version: v.version, Calls: n})
		}
	}
	slices.SortFunc(r.PerVersion, func(a, b VersionCalls) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), s.vers[s.verByRef[a.Service+"@"+a.Version]].parsed.Compare(s.vers[s.verByRef[b.Service+"@"+b.Version]].parsed))
	})
}

// WriteSummary writes the summary table: calls per version, failures,
// retries, latencies, convergence, restarts, invariants, the seed and the
// trace hash.
func (r *Result) WriteSummary(w io.Writer) {
	fmt.Fprintf(w, "scenario %s, seed %d: %s virtual in %s wall, %d events (%.2fM events/s)\n",
		r.Scenario, r.Seed, r.Virtual, r.Wall.Round(time.Millisecond), r.Events, r.EventsPerSecond()/1e6)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "service\tversion\tcalls\tshare\t")
	var served int64
	for _, v := range r.PerVersion {
		served += v.Calls
	}
	for _, v := range r.PerVersion {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f%%\t\n", v.Service, v.Version, v.Calls, 100*float64(v.Calls)/float64(max(served, 1)))
	}
	tw.Flush()
	fmt.Fprintf(w, "calls       %d, failed %d, retries %d, connections never made %d\n", r.Calls, r.Failed, r.Retries, r.DialErrors)
	fmt.Fprintf(w, "failures    judged %d (%d violations), excused %d, stranded-by-force %d, unjudged %d (must be 0)\n",
		r.Judged, r.ViolationCounts[Available]-int(r.Unjudged), r.Excused, r.StrandedByForce, r.Unjudged)
	for _, reason := range sortedKeys(r.FailedByReason) {
		fmt.Fprintf(w, "  failed    %d: %s\n", r.FailedByReason[reason], reason)
	}
	for _, c := range r.PerCohort {
		fmt.Fprintf(w, "%-11s %s: %s\n", c.Kind(), c.Cohort, c.Tally())
	}
	for _, f := range r.Faults {
		to := "the end of the run"
		if f.To >= 0 {
			to = f.To.String()
		}
		excuse := fmt.Sprintf("excused %d failed calls it touched", f.Excused)
		if !f.Excuses {
			excuse = "excuses none"
		}
		fmt.Fprintf(w, "fault       %s %s: %s to %s (settle included), %s\n", f.Kind, f.What, f.From, to, excuse)
	}
	fmt.Fprintf(w, "latency     p50 %s, p90 %s, p99 %s, max %s (virtual, retries included)\n", sig3(r.P50), sig3(r.P90), sig3(r.P99), sig3(r.Max))
	if r.Converged {
		fmt.Fprintf(w, "convergence %s after the last change at %s (bound %s)\n", r.ConvergedAfter, r.LastChange, r.ConvergeBound)
	} else {
		fmt.Fprintf(w, "convergence not reached after the last change at %s (bound %s)\n", r.LastChange, r.ConvergeBound)
	}
	fmt.Fprintf(w, "restarts    containers started again %d (%d after faults, %d wanted again), nodes %d; drain timeouts %d\n",
		r.Restarts, r.FaultRestarts, r.Restarts-r.FaultRestarts, r.NodeRestarts, r.DrainTimeouts)
	fmt.Fprintf(w, "reports     %d of calls in flight only\n", r.InflightReports)
	var inv []string
	for _, i := range Invariants {
		switch {
		case i == Deterministic && !r.DeterminismChecked:
			inv = append(inv, string(i)+" not checked")
		case r.ViolationCounts[i] > 0:
			inv = append(inv, fmt.Sprintf("%s VIOLATED (%d)", i, r.ViolationCounts[i]))
		default:
			inv = append(inv, string(i)+" ok")
		}
	}
	fmt.Fprintf(w, "invariants  %s\n", strings.Join(inv, ", "))
	shown := map[Invariant]int{}
	for _, v := range r.Violations {
		if shown[v.Invariant]++; shown[v.Invariant] <= 5 {
			fmt.Fprintf(w, "  %s\n", v)
		}
	}
	for _, i := range Invariants {
		if n := r.ViolationCounts[i] - min(shown[i], 5); n > 0 {
			fmt.Fprintf(w, "  ... and %d more violations of %s\n", n, i)
		}
	}
	for _, e := range r.Refused {
		fmt.Fprintf(w, "refused step: %s\n", e)
	}
	for _, e := range r.CommandErrors {
		fmt.Fprintf(w, "registry rejected: %s\n", e)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	for _, n := range r.Warnings {
		fmt.Fprintf(w, "warning: %s\n", n)
	}
	fmt.Fprintf(w, "seed: %d\n", r.Seed)
	fmt.Fprintf(w, "trace hash: %s\n", r.TraceHex())
}

// Kind is "cohort", or "chain" for a service version calling in turn.
func (c CohortCalls) Kind() string {
	if c.Chain {
		return "chain"
	}
	return "cohort"
}

// Tally is the caller's calls and failures, as the summary prints them.
func (c CohortCalls) Tally() string {
	return fmt.Sprintf("calls %d, failed %d: judged %d (%d violations), excused %d, stranded-by-force %d, unjudged %d",
		c.Calls, c.Failed, c.Judged, c.Violations-c.Unjudged, c.Excused, c.StrandedByForce, c.Unjudged)
}

// SumCohorts adds up the callers' counts over several runs (a sweep of
// seeds), by name, sorted.
func SumCohorts(rs []*Result) []CohortCalls {
	sum := map[string]*CohortCalls{}
	for _, r := range rs {
		for _, c := range r.PerCohort {
			t := sum[c.Cohort]
			if t == nil {
				t = &CohortCalls{Cohort: c.Cohort, Chain: c.Chain}
				sum[c.Cohort] = t
			}
			t.Calls += c.Calls
			t.Failed += c.Failed
			t.Judged += c.Judged
			t.Excused += c.Excused
			t.StrandedByForce += c.StrandedByForce
			t.Unjudged += c.Unjudged
			t.Violations += c.Violations
		}
	}
	out := make([]CohortCalls, 0, len(sum))
	for _, name := range sortedKeys(sum) {
		out = append(out, *sum[name])
	}
	return out
}

// sig3 rounds a duration to three significant digits.
func sig3(d time.Duration) time.Duration {
	m := time.Duration(1)
	for d/m >= 1000 {
		m *= 10
	}
	return d.Round(m)
}

// histogram is log-linear: 16 buckets per power of two of nanoseconds.
type histogram struct {
	counts [64 * 16]int64
	n      int64
	max    time.Duration
}

func (h *histogram) add(ns int64) {
	if ns < 1 {
		ns = 1
	}
	h.n++
	if d := time.Duration(ns); d > h.max {
		h.max = d
	}
	e := 63 - bits.LeadingZeros64(uint64(ns))
	sub := 0
	if e >= 4 {
		sub = int((uint64(ns) >> (e - 4)) & 15)
	} else {
		sub = int(uint64(ns)<<(4-e)) & 15
	}
	h.counts[e*16+sub]++
}

func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	want := int64(q*float64(h.n-1)) + 1
	var acc int64
	for i, c := range h.counts {
		acc += c
		if acc >= want {
			e, sub := i/16, i%16
			// The bucket's upper bound.
			v := (uint64(16+sub+1) << e) >> 4
			return min(time.Duration(v), h.max)
		}
	}
	return h.max
}

// Chart is calls served per version over virtual time.
type Chart struct {
	Bucket time.Duration
	Series map[string][]int64 // "service@version" -> calls per bucket
	n      int
}

func newChart(end int64) *Chart {
	const buckets = 120
	b := time.Duration((end + buckets - 1) / buckets)
	if b <= 0 {
		b = 1
	}
	return &Chart{Bucket: b, Series: map[string][]int64{}, n: buckets}
}

func (c *Chart) add(at int64, ref string) {
	s := c.Series[ref]
	if s == nil {
		s = make([]int64, c.n)
		c.Series[ref] = s
	}
	if i := int(time.Duration(at) / c.Bucket); i < len(s) {
		s[i]++
	}
}

// Snapshot is the fleet's state after a step: as the step left it just
// before the next one (or the end of the run), or, for the first, the
// initial fleet just before the first step.
type Snapshot struct {
	Initial  bool          // the initial fleet
	At       time.Duration // the step's time
	Taken    time.Duration // when the state was read
	Actions  []string
	Versions []SnapVersion
	Nodes    []SnapNode
	// Containers lists every container when the fleet is small; Counts
	// sums them up by version and observed state either way.
	Containers []SnapContainer
	Counts     []SnapCount
	Cohorts    []SnapCohort
}

// SnapVersion is a version's committed state.
type SnapVersion struct{ Ref, State, Clients string }

// SnapNode is a node's committed status and whether it runs.
type SnapNode struct {
	ID, Status string
	Up         bool
}

// SnapContainer is a container as the registry has it.
type SnapContainer struct{ ID, Node, Services, Desired, Observed, Local string }

// SnapCount counts the containers holding a version in an observed state.
type SnapCount struct {
	Ref, Observed string
	N             int
}

// SnapCohort counts a cohort's clients per version.
type SnapCohort struct {
	Name     string
	Versions map[string]int
}

// snapshot records the fleet's state now, as left by step st (nil: the
// initial fleet).
func (s *world) snapshot(st *Step) {
	sn := Snapshot{Initial: st == nil, Taken: time.Duration(s.now)}
	if st != nil {
		sn.At = st.At
		for _, a := range st.Actions {
			sn.Actions = append(sn.Actions, a.Describe())
		}
	}
	store := s.reg.store
	_, vs, _ := store.Versions("")
	for _, v := range vs {
		sn.Versions = append(sn.Versions, SnapVersion{Ref: v.Key().String(), State: v.State, Clients: v.Clients})
	}
	_, ns, _ := store.Nodes()
	status := map[string]string{}
	for _, n := range ns {
		status[n.ID] = n.Status
	}
	if len(s.nodes) <= 50 {
		for _, n := range s.nodes {
			sn.Nodes = append(sn.Nodes, SnapNode{ID: n.id, Status: orNone(status[n.id]), Up: n.up})
		}
	}
	_, cs, _ := store.Containers("")
	counts := map[[2]string]int{}
	for _, c := range cs {
		obs := ""
		if c.Status != nil {
			obs = c.Status.State
		}
		var refs []string
		for _, k := range c.Spec.Services {
			refs = append(refs, k.String())
			counts[[2]string{k.String(), orNone(obs)}]++
		}
		if len(cs) <= 60 {
			local := ""
			if n := s.nodes[s.nodeByID[c.Spec.Node]]; n.up && n.local != nil {
				if l := n.local[c.ID]; l != nil {
					local = string(l.Phase)
				}
			} else if !n.up {
				local = "node down"
			}
			sn.Containers = append(sn.Containers, SnapContainer{ID: c.ID, Node: c.Spec.Node, Services: strings.Join(refs, ","),
				Desired: c.Desired, Observed: orNone(obs), Local: local})
		}
	}
	for k, n := range counts {
		sn.Counts = append(sn.Counts, SnapCount{Ref: k[0], Observed: k[1], N: n})
	}
	slices.SortFunc(sn.Counts, func(a, b SnapCount) int {
		return cmp.Or(cmp.Compare(a.Ref, b.Ref), cmp.Compare(a.Observed, b.Observed))
	})
	for _, k := range s.cohorts {
		sc := SnapCohort{Name: k.spec.Name, Versions: map[string]int{}}
		for ci := k.lo; ci < k.hi; ci++ {
			sc.Versions[k.versions[s.cl.ver[ci]]]++
		}
		sn.Cohorts = append(sn.Cohorts, sc)
	}
	s.res.Snapshots = append(s.res.Snapshots, sn)
}
