package sim_test

import (
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
