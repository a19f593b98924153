package sim_test

import (
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/client/callpolicy"
	"github.com/coexist-dev/coexist/node/reconcile"
	"github.com/coexist-dev/coexist/raftregistry/census"
	"github.com/coexist-dev/coexist/raftregistry/state"
	"github.com/coexist-dev/coexist/routing"
	"github.com/coexist-dev/coexist/sim"
)

// Each invariant exists to catch a kind of bug. These specs plant one such
// bug through the simulator's hooks and show that the simulator reports it,
// with the virtual time, the event and the seed; where the scenario is
// built here, a control run without the bug shows it is clean.

// newestCaller is the caller as a router that ignores client ranges sees
// it: as if it were of the newest active running version, which every
// version's range admits.
func newestCaller(t *routing.Table, c routing.Client, service string) routing.Client {
	cands := routing.Candidates(t, c, service) // lowest first
	for i := len(cands) - 1; i >= 0; i-- {
		if cands[i].Running > 0 && cands[i].State == api.VersionActive {
			if fake, err := routing.ParseClient(c.Name, cands[i].Version, nil, c.Node); err == nil {
				return fake
			}
		}
	}
	return c
}

// ignoreRanges is a router that ignores client ranges.
func ignoreRanges(t *routing.Table, c routing.Client, service string, rnd routing.Rand) (routing.Route, error) {
	return routing.Select(t, newestCaller(t, c, service), service, rnd)
}

// admitIgnoringRanges is the same bug in the gateway's re-check.
func admitIgnoringRanges(t *routing.Table, c routing.Client, service, container string, rnd routing.Rand) (routing.Decision, routing.Route, error) {
	return routing.Admit(t, newestCaller(t, c, service), service, container, rnd)
}

// admitBestOnly is the gateway's admission as it was before
// docs/design.md §4 said "the gateway admits; it does not choose again": a
// named container is refused unless it holds the version Select would choose
// now.
func admitBestOnly(t *routing.Table, c routing.Client, service, container string, rnd routing.Rand) (routing.Decision, routing.Route, error) {
	d, r, err := routing.Admit(t, c, service, container, rnd)
	if d != routing.DecisionForward || container == "" {
		return d, r, err
	}
	best, err := routing.Select(t, c, service, rnd)
	if err != nil || best.Version != r.Version {
		return routing.DecisionRefuseRetry, routing.Route{}, routing.ErrStaleContainer
	}
	return d, r, nil
}

// drainIgnoringInflight is a reconciler whose drain does not wait: it
// plans as if nothing were in flight.
func drainIgnoringInflight(d reconcile.Desired, o reconcile.Observed, now time.Time, cfg reconcile.PlanConfig) []reconcile.Action {
	blind := make(reconcile.Observed, len(o))
	for id, l := range o {
		c := *l
		c.Inflight = nil
		blind[id] = &c
	}
	return reconcile.Plan(d, blind, now, cfg)
}

// restartOnAnyChange is a reconciler that fingerprints a container with its
// record's modify index, so that every status report looks like a new spec
// and the container is stopped and started again.
func restartOnAnyChange(d reconcile.Desired, o reconcile.Observed, now time.Time, cfg reconcile.PlanConfig) []reconcile.Action {
	cs := slices.Clone(d.Containers)
	for i := range cs {
		cs[i].Config.Args = append(slices.Clone(cs[i].Config.Args), strconv.FormatUint(cs[i].ModifyIndex, 10))
	}
	d.Containers = cs
	return reconcile.Plan(d, o, now, cfg)
}

// admitDraining is a gateway that forwards every call naming a container,
// even one that is draining or stopping, where it should refuse the call as
// safe to retry. (A DecisionForward with a zero Route forwards to the named
// container.)
func admitDraining(t *routing.Table, c routing.Client, service, container string, rnd routing.Rand) (routing.Decision, routing.Route, error) {
	d, r, err := routing.Admit(t, c, service, container, rnd)
	if d == routing.DecisionRefuseRetry && container != "" {
		return routing.DecisionForward, routing.Route{}, nil
	}
	return d, r, err
}

// globalRandRouter draws its two random choices from math/rand/v2's global,
// unseeded source instead of the one it is given.
func globalRandRouter(t *routing.Table, c routing.Client, service string, _ routing.Rand) (routing.Route, error) {
	return routing.Select(t, c, service, globalRand{})
}

type globalRand struct{}

func (globalRand) IntN(n int) int { return rand.IntN(n) }

// failOneInTenOf is a gateway that fails one call in ten to service,
// counting them in planted.
func failOneInTenOf(service string, planted *int) func(*routing.Table, routing.Client, string, string, routing.Rand) (routing.Decision, routing.Route, error) {
	return func(t *routing.Table, c routing.Client, svc, container string, rnd routing.Rand) (routing.Decision, routing.Route, error) {
		if svc == service && rnd.IntN(10) == 0 {
			*planted++
			return routing.DecisionUnknownService, routing.Route{}, routing.ErrUnknownService
		}
		return routing.Admit(t, c, svc, container, rnd)
	}
}

// failOneInTen is a gateway that fails one call in ten outright, as if
// the service were unknown, though the container it names is fine.
func failOneInTen(t *routing.Table, c routing.Client, service, container string, rnd routing.Rand) (routing.Decision, routing.Route, error) {
	if rnd.IntN(10) == 0 {
		return routing.DecisionUnknownService, routing.Route{}, routing.ErrUnknownService
	}
	return routing.Admit(t, c, service, container, rnd)
}

// giveUpOnExit is a reconciler that fails a container at its first exit
// instead of restarting it.
func giveUpOnExit(d reconcile.Desired, o reconcile.Observed, now time.Time, cfg reconcile.PlanConfig) []reconcile.Action {
	acts := reconcile.Plan(d, o, now, cfg)
	for i, a := range acts {
		if l := o[a.ID]; a.Kind == reconcile.ActStart && l != nil && l.Phase == reconcile.PhaseExited {
			acts[i] = reconcile.Action{Kind: reconcile.ActFail, ID: a.ID, Grace: cfg.KillTimeout, Reason: "gave up"}
		}
	}
	return acts
}

// twoLines: api 1.0.0 for clients 1.x and api 2.0.0 for clients 2.x, both
// running, and 1.x clients calling.
func twoLines() *sim.Scenario {
	sc := sim.New("two-lines")
	sc.Duration = 60 * time.Second
	sc.AddNodes("n", 3)
	sc.Version("api", "1.0.0", ">= 1.0, < 2.0").Version("api", "2.0.0", ">= 2.0, < 3.0")
	sc.ContainerGroup("a1", 3, nil, "api@1.0.0")
	sc.ContainerGroup("a2", 3, nil, "api@2.0.0")
	sc.Cohort(sim.CohortSpec{Name: "web", Clients: 50, Version: "1.4.0", Calls: []string{"api"}})
	sc.At(30*time.Second, sim.SetRate{Cohort: "web", Rate: 2})
	return sc
}

// scaleDown removes half of greeter's containers under load, while the
// clients' tables lag the agents' by up to 600ms: stale clients keep naming
// containers that drain and stop.
func scaleDown() *sim.Scenario {
	sc := sim.New("scale-down")
	sc.Duration = 70 * time.Second
	sc.Registry.Propagation = sim.Uniform(100*time.Millisecond, 600*time.Millisecond)
	sc.Registry.NodePropagation = sim.Uniform(2*time.Millisecond, 20*time.Millisecond)
	sc.Agent.StopTime = sim.Uniform(200*time.Millisecond, 500*time.Millisecond)
	sc.Agent.ServiceTime = sim.Uniform(5*time.Millisecond, 50*time.Millisecond)
	sc.AddNodes("n", 3)
	sc.Version("greeter", "1.0.0", ">= 1.0, < 2.0")
	sc.ContainerGroup("g", 6, nil, "greeter@1.0.0")
	sc.Cohort(sim.CohortSpec{Name: "web", Clients: 100, Version: "1.2.0", Calls: []string{"greeter"}, Rate: 2})
	sc.At(20*time.Second, sim.RemoveGroup("g", 3)...)
	return sc
}

// lateClients retires greeter 1.0.0 beside 1.1.0 while the clients see the
// registry 1 to 3 s late and the agents within 20 ms: the agents drain and
// stop 1.0.0 long before every client has seen it draining.
func lateClients() *sim.Scenario {
	sc := sim.New("late-clients")
	sc.Duration = 50 * time.Second
	sc.Registry.Propagation = sim.Uniform(time.Second, 3*time.Second)
	sc.Registry.NodePropagation = sim.Uniform(2*time.Millisecond, 20*time.Millisecond)
	sc.AddNodes("n", 3)
	sc.Version("greeter", "1.0.0", ">= 1.0, < 2.0").Version("greeter", "1.1.0", ">= 1.0, < 2.0")
	sc.ContainerGroup("g1", 3, nil, "greeter@1.0.0")
	sc.ContainerGroup("g2", 3, nil, "greeter@1.1.0")
	sc.Cohort(sim.CohortSpec{Name: "web", Clients: 50, Version: "1.2.0", Calls: []string{"greeter"}, Rate: 2})
	sc.At(20*time.Second, sim.RetireVersion{Service: "greeter", Version: "1.0.0"})
	return sc
}

// retireAtOnce is a leader that retires a drained version without waiting
// for its draining state to be in force.
func retireAtOnce(due []state.RetireDue, _ func(uint64) bool) (ready, held []state.RetireDue) {
	return due, nil
}

// strandNobody is a registry whose no-stranding check is disabled.
func strandNobody([]api.Service, []api.Container, []api.Node, []census.Cohort, census.Change) []census.Cohort {
	return nil
}

var _ = Describe("planted bugs", func() {
	seeds := []uint64{1, 2, 3, 4, 5}

	// expectCaught runs sc on each seed with the hooks and expects the
	// invariant to be reported, each violation with its time, event and
	// seed.
	expectCaught := func(sc *sim.Scenario, hooks sim.Hooks, inv sim.Invariant) {
		GinkgoHelper()
		for _, seed := range seeds {
			r, err := sim.Run(sc, sim.Options{Seed: seed, Hooks: hooks, NoRecord: true})
			Expect(err).NotTo(HaveOccurred())
			vs := violations(r, inv)
			Expect(vs).NotTo(BeEmpty(), "seed %d: the planted bug went unnoticed\n%s", seed, describe(sc.Name, r))
			for _, v := range vs {
				Expect(v.Seed).To(Equal(seed))
				Expect(v.At).To(BeNumerically(">", 0))
				Expect(v.Event).NotTo(BeEmpty())
				Expect(v.Detail).NotTo(BeEmpty())
				Expect(v.String()).To(ContainSubstring("seed " + strconv.FormatUint(seed, 10)))
			}
		}
	}
	// expectCaughtFor is expectCaught, with at least one violation saying
	// what.
	expectCaughtFor := func(sc *sim.Scenario, hooks sim.Hooks, inv sim.Invariant, what string) {
		GinkgoHelper()
		expectCaught(sc, hooks, inv)
		for _, seed := range seeds {
			r, err := sim.Run(sc, sim.Options{Seed: seed, Hooks: hooks, NoRecord: true})
			Expect(err).NotTo(HaveOccurred())
			Expect(violations(r, inv)).To(ContainElement(HaveField("Detail", ContainSubstring(what))), "seed %d\n%s", seed, describe(sc.Name, r))
		}
	}
	expectClean := func(sc *sim.Scenario) {
		GinkgoHelper()
		for _, seed := range seeds {
			r, err := sim.Run(sc, sim.Options{Seed: seed, NoRecord: true})
			Expect(err).NotTo(HaveOccurred())
			Expect(r.OK()).To(BeTrue(), "control run, seed %d\n%s", seed, describe(sc.Name, r))
		}
	}
	file := func(name string) *sim.Scenario { return example(filepath.Join(scenarioDir, name)) }

	It("compatible: a router that ignores client ranges", func() {
		sc := twoLines()
		expectClean(sc)
		expectCaught(sc, sim.Hooks{Router: ignoreRanges, Admit: admitIgnoringRanges}, sim.Compatible)
	})

	It("compatible: a router that ignores client ranges, while a range changes three times in two seconds", func() {
		// The range history accepts what views not yet updated admit; it
		// must not accept what no range in force admits.
		sc := rangeChurn()
		hooks := sim.Hooks{Router: ignoreRanges, Admit: admitIgnoringRanges}
		expectCaught(sc, hooks, sim.Compatible)
		for _, seed := range seeds {
			r, err := sim.Run(sc, sim.Options{Seed: seed, Hooks: hooks, NoRecord: true, MaxViolations: 1 << 20})
			Expect(err).NotTo(HaveOccurred())
			Expect(violations(r, sim.Compatible)).To(ContainElement(HaveField("At", BeNumerically(">", 26*time.Second))),
				"seed %d: caught after the last change is seen by all\n%s", seed, describe(sc.Name, r))
		}
	})

	It("available: a gateway that admits calls to a draining container instead of refusing them as safe to retry", func() {
		sc := scaleDown()
		expectClean(sc)
		expectCaught(sc, sim.Hooks{Admit: admitDraining}, sim.Available)
	})

	It("available: a gateway failing calls while the agents report calls in flight is caught on every call", func() {
		// In-flight counts are reported every second; a report of them
		// alone is for display and must not make a running container look
		// just started to the check (docs/design.md §5).
		sc := steady("inflight-reports-under-failures")
		sc.Agent.ServiceTime = sim.Uniform(200*time.Millisecond, 400*time.Millisecond)
		sc.Agent.InflightReportInterval = time.Second
		expectClean(sc)
		for _, seed := range seeds {
			r, err := sim.Run(sc, sim.Options{Seed: seed, Hooks: sim.Hooks{Admit: failOneInTen}, NoRecord: true})
			Expect(err).NotTo(HaveOccurred())
			Expect(r.InflightReports).To(BeNumerically(">", 10), "%s", describe(sc.Name, r))
			Expect(r.Failed).To(BeNumerically(">", 100), "%s", describe(sc.Name, r))
			Expect(r.ViolationCounts[sim.Available]).To(BeEquivalentTo(r.Failed), "every failed call is a violation\n%s", describe(sc.Name, r))
		}
	})

	It("available: failures during an unrelated fault are judged, not excused", func() {
		// audit runs alone on n-3 and nobody calls it; its container
		// crashes at 20s. The fault touches no call of web, which only
		// ever goes to n-1 and n-2: every call the planted gateway fails
		// is a violation, in the fault's window too.
		sc := sim.New("unrelated-crash")
		sc.Duration = 45 * time.Second
		sc.AddNodes("n", 3)
		sc.Version("greeter", "1.0.0", ">= 1.0, < 2.0").Version("audit", "1.0.0", ">= 1.0")
		sc.ContainerGroup("g", 2, []string{"n-1", "n-2"}, "greeter@1.0.0")
		sc.ContainerGroup("a", 1, []string{"n-3"}, "audit@1.0.0")
		sc.Cohort(sim.CohortSpec{Name: "web", Clients: 50, Version: "1.2.0", Calls: []string{"greeter"}, Rate: 2})
		sc.At(20*time.Second, sim.CrashContainer{ID: "a-1"})
		expectClean(sc)
		for _, seed := range seeds {
			r, err := sim.Run(sc, sim.Options{Seed: seed, Hooks: sim.Hooks{Admit: failOneInTen}, NoRecord: true})
			Expect(err).NotTo(HaveOccurred())
			Expect(r.Faults).To(HaveLen(1))
			Expect(r.Faults[0].Excused).To(BeZero(), "%s", describe(sc.Name, r))
			Expect(r.Excused).To(BeZero(), "%s", describe(sc.Name, r))
			Expect(r.Failed).To(BeNumerically(">", 100), "%s", describe(sc.Name, r))
			Expect(r.ViolationCounts[sim.Available]).To(BeEquivalentTo(r.Failed), "every failed call is a violation\n%s", describe(sc.Name, r))
		}
	})

	It("available: failures during a partition of other links are judged, not excused", func() {
		// ops is cut from n-3, where audit runs, for five seconds: its
		// calls fail and are excused. web never crosses that link; every
		// call of web the planted gateway fails is a violation.
		sc := sim.New("unrelated-partition")
		sc.Duration = 45 * time.Second
		sc.AddNodes("n", 3)
		sc.Version("greeter", "1.0.0", ">= 1.0, < 2.0").Version("audit", "1.0.0", ">= 1.0")
		sc.ContainerGroup("g", 2, []string{"n-1", "n-2"}, "greeter@1.0.0")
		sc.ContainerGroup("a", 1, []string{"n-3"}, "audit@1.0.0")
		sc.Cohort(sim.CohortSpec{Name: "web", Clients: 50, Version: "1.2.0", Calls: []string{"greeter"}, Rate: 2})
		sc.Cohort(sim.CohortSpec{Name: "ops", Clients: 10, Version: "1.0.0", Calls: []string{"audit"}, Rate: 2})
		sc.At(20*time.Second, sim.Partition{Name: "p", A: []string{"cohort:ops"}, B: []string{"node:n-3"}})
		sc.At(25*time.Second, sim.Heal{Name: "p"})
		expectClean(sc)
		for _, seed := range seeds {
			planted := 0
			r, err := sim.Run(sc, sim.Options{Seed: seed, Hooks: sim.Hooks{Admit: failOneInTenOf("greeter", &planted)}, NoRecord: true})
			Expect(err).NotTo(HaveOccurred())
			Expect(planted).To(BeNumerically(">", 100))
			Expect(r.Excused).To(BeNumerically(">", 0), "ops's calls across the cut are excused\n%s", describe(sc.Name, r))
			Expect(r.ViolationCounts[sim.Available]).To(Equal(planted), "every call the gateway failed is a violation\n%s", describe(sc.Name, r))
			Expect(r.Failed).To(Equal(r.Excused+int64(planted)), "%s", describe(sc.Name, r))
		}
	})

	It("available: the faults of unrelated-fault.hcl excuse none of web's calls a planted gateway fails", func() {
		// n-3, where only audit runs, crashes and returns and audit's
		// container is killed; web never calls n-3. Every greeter call the
		// planted gateway fails is a violation; the excused calls are ops's.
		sc := file("unrelated-fault.hcl")
		expectClean(sc)
		for _, seed := range seeds {
			planted := 0
			r, err := sim.Run(sc, sim.Options{Seed: seed, Hooks: sim.Hooks{Admit: failOneInTenOf("greeter", &planted)}, NoRecord: true})
			Expect(err).NotTo(HaveOccurred())
			Expect(planted).To(BeNumerically(">", 100))
			Expect(r.Faults).To(HaveLen(3))
			Expect(r.ViolationCounts[sim.Available]).To(Equal(planted), "every call the gateway failed is a violation\n%s", describe(sc.Name, r))
			cohorts := map[string]sim.CohortCalls{}
			for _, c := range r.PerCohort {
				cohorts[c.Cohort] = c
			}
			Expect(cohorts["web"].Excused).To(BeZero(), "%s", describe(sc.Name, r))
			Expect(cohorts["web"].Violations).To(BeEquivalentTo(planted), "%s", describe(sc.Name, r))
			Expect(cohorts["ops"].Excused).To(BeNumerically(">", 0), "ops's calls to the crashed node are excused\n%s", describe(sc.Name, r))
			Expect(r.Excused).To(Equal(cohorts["ops"].Excused))
		}
	})

	It("no restarts: a reconciler that restarts an unchanged container", func() {
		expectCaught(file("rolling-upgrade.hcl"), sim.Hooks{Planner: restartOnAnyChange}, sim.NoRestarts)
	})

	It("drained: a drain that stops a container with calls in flight", func() {
		expectCaught(file("retire-under-load.hcl"), sim.Hooks{Planner: drainIgnoringInflight}, sim.Drained)
	})

	It("drained: a gateway that admits calls to a container whose stop began", func() {
		expectCaughtFor(scaleDown(), sim.Hooks{Admit: admitDraining}, sim.Drained, "after its stop began")
	})

	It("drained: a leader that retires without waiting for the draining state to be in force", func() {
		expectClean(lateClients())
		expectCaughtFor(lateClients(), sim.Hooks{RetireRule: retireAtOnce}, sim.Drained, "before the draining state of greeter@1.0.0")
	})

	It("no stranding: a registry whose stranding check is disabled", func() {
		sc := twoLines()
		sc.At(20*time.Second, sim.RetireVersion{Service: "api", Version: "1.0.0"})
		expectClean(sc)
		expectCaughtFor(sc, sim.Hooks{Stranded: strandNobody}, sim.NoStranding, "live cohort web@1.4.0 lost its last candidate for api when api@1.0.0 changed")
	})

	It("converges: agents that never heartbeat, so that every node is down in the registry", func() {
		expectCaughtFor(file("rolling-upgrade.hcl"), sim.Hooks{NoHeartbeats: true}, sim.Converges, "is up but down in the registry")
	})

	It("converges: a reconciler that fails a container at its first exit instead of restarting it", func() {
		expectCaughtFor(file("node-crash-during-upgrade.hcl"), sim.Hooks{Planner: giveUpOnExit}, sim.Converges,
			"fewer than its 5 restart attempts")
	})

	It("converges: a client that never refreshes its table", func() {
		expectCaught(file("rolling-upgrade.hcl"), sim.Hooks{NoClientRefresh: true}, sim.Converges)
	})

	It("at-most-once: an SDK that sends a call again after it reached a service", func() {
		// g-1 crashes at 20s with calls in flight: they reached it, and
		// may have done their work. The real policy fails them (the crash
		// excuses it); a policy that retries every failure sends them
		// again.
		sc := sim.New("crash-under-load")
		sc.Duration = 40 * time.Second
		sc.AddNodes("n", 2)
		sc.Agent.ServiceTime = sim.Uniform(200*time.Millisecond, 400*time.Millisecond)
		sc.Version("greeter", "1.0.0", ">= 1.0, < 2.0")
		sc.ContainerGroup("g", 2, nil, "greeter@1.0.0")
		sc.Cohort(sim.CohortSpec{Name: "web", Clients: 50, Version: "1.2.0", Calls: []string{"greeter"}, Rate: 2})
		sc.At(20*time.Second, sim.CrashContainer{ID: "g-1"})
		expectClean(sc)
		retryAll := func(callpolicy.Outcome) bool { return true }
		expectCaughtFor(sc, sim.Hooks{Retryable: retryAll}, sim.AtMostOnce, "is sent again after it reached container g-1")
	})

	It("deterministic: a router that draws from the global random source", func() {
		sc := file("rolling-upgrade.hcl")
		for _, seed := range seeds[:2] {
			r, err := sim.Check(sc, sim.Options{Seed: seed, Hooks: sim.Hooks{Router: globalRandRouter}, NoRecord: true})
			Expect(err).NotTo(HaveOccurred())
			Expect(violations(r, sim.Deterministic)).To(HaveLen(1), "%s", describe(sc.Name, r))
			Expect(violations(r, sim.Deterministic)[0].Seed).To(Equal(seed))
		}
	})

	It("available: a gateway that chooses again and refuses a compatible, active container because a newer version exists", func() {
		// Clients see the registry 1-4 s late, longer than their 1 s
		// deadline: for seconds they name 1.0.0 containers while the
		// gateways already prefer 1.1.0 (docs/design.md §4).
		sc := file("client-lag-upgrade.hcl")
		expectClean(sc)
		expectCaught(sc, sim.Hooks{Admit: admitBestOnly}, sim.Available)
	})
})
