package sim_test

import (
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/coexist-dev/coexist/sim"
)

// These specs check the checker itself: that the simulated agent keeps the
// timers the real one keeps, and that every failed call is judged by what
// could have touched it.

// steady is two containers of greeter under a steady load, on two nodes,
// with nothing happening.
func steady(name string) *sim.Scenario {
	sc := sim.New(name)
	sc.Duration = 40 * time.Second
	sc.AddNodes("n", 2)
	sc.Version("greeter", "1.0.0", ">= 1.0, < 2.0")
	sc.ContainerGroup("g", 2, nil, "greeter@1.0.0")
	sc.Cohort(sim.CohortSpec{Name: "web", Clients: 50, Version: "1.2.0", Calls: []string{"greeter"}, Rate: 2})
	return sc
}

var _ = Describe("the simulated agent's timers", func() {
	seeds := []uint64{1, 2, 3}

	It("restarts a crashed container after restart_delay, even when it is shorter than reconcile_interval", func() {
		sc := steady("short-restart-delay")
		sc.Agent.ReconcileInterval = 5 * time.Second
		sc.Agent.RestartDelay = 100 * time.Millisecond
		sc.Agent.StartTime = sim.Uniform(100*time.Millisecond, 200*time.Millisecond)
		sc.Agent.HealthDelay = sim.Uniform(10*time.Millisecond, 20*time.Millisecond)
		sc.ConvergeWithin = 3 * time.Second
		sc.At(20*time.Second, sim.CrashContainer{ID: "g-1"})
		for _, seed := range seeds {
			r, err := sim.Run(sc, sim.Options{Seed: seed, NoRecord: true})
			Expect(err).NotTo(HaveOccurred())
			expectClean(sc.Name, r)
			Expect(r.FaultRestarts).To(Equal(1), "%s", describe(sc.Name, r))
			// restart_delay, a start and a health check, a report and its
			// publication: well under a second, not five.
			Expect(r.Converged).To(BeTrue(), "%s", describe(sc.Name, r))
			Expect(r.ConvergedAfter).To(BeNumerically("<", time.Second), "%s", describe(sc.Name, r))
		}
	})

	It("reports calls in flight every inflight_report_interval while idle", func() {
		sc := steady("inflight-reports")
		sc.Agent.ServiceTime = sim.Uniform(200*time.Millisecond, 400*time.Millisecond)
		sc.Agent.InflightReportInterval = time.Second
		for _, seed := range seeds {
			r, err := sim.Run(sc, sim.Options{Seed: seed, NoRecord: true})
			Expect(err).NotTo(HaveOccurred())
			expectClean(sc.Name, r)
			// Thirty seconds of load, about fifteen calls in flight on each
			// of two containers: a report each every two seconds or so.
			Expect(r.InflightReports).To(BeNumerically(">=", 20), "%s", describe(sc.Name, r))
		}
	})
})

// unserved: greeter 1.0.0 serves 1.x clients and 2.0.0 serves 2.x; the
// cohort legacy, at 0.9.0, is served by neither.
func unserved() *sim.Scenario {
	sc := steady("unserved")
	sc.Version("greeter", "2.0.0", ">= 2.0, < 3.0")
	sc.ContainerGroup("h", 2, nil, "greeter@2.0.0")
	sc.Cohort(sim.CohortSpec{Name: "legacy", Clients: 10, Version: "0.9.0", Calls: []string{"greeter"}})
	return sc
}

// retiring: the cohort old, at 1.5.0, is served only by greeter 1.0.0,
// which a step retires at 20s.
func retiring(force bool) *sim.Scenario {
	sc := steady("retire-strands")
	sc.Version("greeter", "2.0.0", ">= 2.0, < 3.0")
	sc.ContainerGroup("h", 2, nil, "greeter@2.0.0")
	sc.Cohort(sim.CohortSpec{Name: "new", Clients: 20, Version: "2.1.0", Calls: []string{"greeter"}})
	sc.At(20*time.Second, sim.RetireVersion{Service: "greeter", Version: "1.0.0", Force: force})
	return sc
}

var _ = Describe("every failed call is judged", func() {
	seeds := []uint64{1, 2, 3}

	It("a cohort no version admits fails the run, with a warning, unless the scenario expects it", func() {
		sc := unserved()
		Expect(sc.Warnings()).To(HaveLen(1))
		Expect(sc.Warnings()[0].String()).To(ContainSubstring(`cohort "legacy" at 0.9.0 calls greeter, which no version ever admits`))
		for _, seed := range seeds {
			r, err := sim.Run(sc, sim.Options{Seed: seed, NoRecord: true})
			Expect(err).NotTo(HaveOccurred())
			Expect(r.OK()).To(BeFalse(), "%s", describe(sc.Name, r))
			Expect(r.Unjudged).To(BeNumerically(">", 50), "%s", describe(sc.Name, r))
			Expect(r.Unjudged).To(Equal(r.Failed), "%s", describe(sc.Name, r))
			Expect(violations(r, sim.Available)[0].Detail).To(HavePrefix("unjudged: call from legacy@0.9.0 to greeter failed"))
			Expect(r.Warnings).To(HaveLen(1))
		}

		sc = unserved()
		sc.Cohorts[1].ExpectUnserved = true
		Expect(sc.Warnings()).To(BeEmpty())
		for _, seed := range seeds {
			r, err := sim.Run(sc, sim.Options{Seed: seed, NoRecord: true})
			Expect(err).NotTo(HaveOccurred())
			expectClean(sc.Name, r)
			Expect(r.Failed).To(BeNumerically(">", 50))
			Expect(r.Judged).To(Equal(r.Failed), "%s", describe(sc.Name, r))
			Expect(r.Unjudged).To(BeZero())
		}
	})

	It("a retirement that strands a live cohort is refused, and listed, unless the step forces it", func() {
		for _, seed := range seeds {
			r, err := sim.Run(retiring(false), sim.Options{Seed: seed, NoRecord: true})
			Expect(err).NotTo(HaveOccurred())
			expectClean("retire-strands", r)
			Expect(r.Refused).To(ConsistOf(ContainSubstring(`20s: retire greeter@1.0.0: retiring version 1.0.0 of service "greeter" would leave live clients with no version to call: web@1.2.0, 50 instances`)))
			Expect(r.Failed).To(BeZero(), "%s", describe("retire-strands", r))
			var sum strings.Builder
			r.WriteSummary(&sum)
			Expect(sum.String()).To(ContainSubstring("refused step: 20s: retire greeter@1.0.0: "))

			r, err = sim.Run(retiring(true), sim.Options{Seed: seed, NoRecord: true})
			Expect(err).NotTo(HaveOccurred())
			expectClean("retire-strands, forced", r)
			Expect(r.Refused).To(BeEmpty())
			Expect(r.StrandedByForce).To(BeNumerically(">", 50), "%s", describe("retire-strands, forced", r))
			Expect(r.Unjudged).To(BeZero())
			Expect(r.Judged + r.Excused + r.StrandedByForce + r.Unjudged).To(Equal(r.Failed))
		}
	})

	It("a narrowing that strands a live cohort is refused unless the step forces it", func() {
		narrowing := func(force bool) *sim.Scenario {
			sc := retiring(false)
			sc.Steps = nil
			sc.At(20*time.Second, sim.DeclareVersion{VersionSpec: sim.VersionSpec{Service: "greeter", Version: "1.0.0", Clients: ">= 1.0, < 1.1"}, Force: force})
			return sc
		}
		for _, seed := range seeds {
			r, err := sim.Run(narrowing(false), sim.Options{Seed: seed, NoRecord: true})
			Expect(err).NotTo(HaveOccurred())
			expectClean("narrowing", r)
			Expect(r.Refused).To(ConsistOf(ContainSubstring(`narrowing the client range of version 1.0.0 of service "greeter" would leave live clients with no version to call: web@1.2.0`)))

			r, err = sim.Run(narrowing(true), sim.Options{Seed: seed, NoRecord: true})
			Expect(err).NotTo(HaveOccurred())
			Expect(r.Refused).To(BeEmpty())
			Expect(r.Failed).To(BeNumerically(">", 50), "%s", describe("narrowing, forced", r))
			Expect(violations(r, sim.NoStranding)).To(BeEmpty())
		}
	})

	It("reads expect_unserved and force from a scenario file, and existing files unchanged", func() {
		src := base + "cohort \"legacy\" {\n  clients = 5\n  version = \"0.9.0\"\n  calls = [\"greeter\"]\n  expect_unserved = true\n}\n" +
			"step \"20s\" {\n  retire_version {\n    service = \"greeter\"\n    version = \"1.0.0\"\n    force = true\n  }\n}\n"
		sc, err := sim.Parse([]byte(src), "t.hcl")
		Expect(err).NotTo(HaveOccurred())
		Expect(sc.Cohorts[1].ExpectUnserved).To(BeTrue())
		Expect(sc.Steps[0].Actions[0]).To(Equal(sim.RetireVersion{Service: "greeter", Version: "1.0.0", Force: true, Pos: sc.Steps[0].Actions[0].(sim.RetireVersion).Pos}))
		sc, err = sim.Parse([]byte(base+"step \"20s\" {\n  declare_version {\n    service = \"greeter\"\n    version = \"1.0.0\"\n    clients = \">= 1.0, < 1.1\"\n    force = true\n  }\n}\n"), "t.hcl")
		Expect(err).NotTo(HaveOccurred())
		Expect(sc.Steps[0].Actions[0].(sim.DeclareVersion).Force).To(BeTrue())
		Expect(sc.Warnings()).To(BeEmpty())
		for _, f := range exampleFiles() {
			Expect(example(f).Warnings()).To(BeEmpty(), f)
		}
	})
})

// rangeChurn declares api 2.0.0 with three ranges within two seconds,
// A → B → C, under load, while every watcher lags the registry by up to
// 1.5 s: calls that began under A are served after C is committed, by
// views that still hold A. Each cohort is admitted by a different range
// of 2.0.0; 1.0.0 admits them all.
func rangeChurn() *sim.Scenario {
	sc := sim.New("range-churn")
	sc.Duration = 50 * time.Second
	sc.Registry.Propagation = sim.Uniform(300*time.Millisecond, 1500*time.Millisecond)
	sc.Registry.NodePropagation = sim.Uniform(300*time.Millisecond, 1500*time.Millisecond)
	sc.AddNodes("n", 3)
	sc.Version("api", "1.0.0", ">= 1.0, < 3.0").Version("api", "2.0.0", ">= 2.0, < 3.0") // A
	sc.ContainerGroup("a1", 3, nil, "api@1.0.0")
	sc.ContainerGroup("a2", 3, nil, "api@2.0.0")
	sc.Cohort(sim.CohortSpec{Name: "app", Clients: 50, Version: "2.5.0", Calls: []string{"api"}, Rate: 4})
	sc.Cohort(sim.CohortSpec{Name: "web", Clients: 50, Version: "1.7.0", Calls: []string{"api"}, Rate: 4})
	sc.Cohort(sim.CohortSpec{Name: "mobile", Clients: 50, Version: "1.2.0", Calls: []string{"api"}, Rate: 4})
	declare := func(clients string) sim.Action {
		return sim.DeclareVersion{VersionSpec: sim.VersionSpec{Service: "api", Version: "2.0.0", Clients: clients}}
	}
	sc.At(20*time.Second, declare(">= 1.0, < 2.0")) // B
	sc.At(21*time.Second, declare(">= 1.0, < 1.5")) // C
	sc.At(22*time.Second, declare(">= 1.5, < 3.0")) // D
	return sc
}

var _ = Describe("ranges in force", func() {
	It("a call is judged by every range in force when it began, however many changes follow", func() {
		sc := rangeChurn()
		for _, seed := range []uint64{1, 2, 3, 4, 5} {
			r, err := sim.Run(sc, sim.Options{Seed: seed, NoRecord: true})
			Expect(err).NotTo(HaveOccurred())
			expectClean(sc.Name, r)
			Expect(r.Calls).To(BeNumerically(">", 10000))
		}
	})
})
