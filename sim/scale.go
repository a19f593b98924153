package sim

import (
	"fmt"
	"time"
)

// ScaleConfig sizes the scenario of Scale.
type ScaleConfig struct {
	Nodes    int     // the orders containers are two per node, catalog one
	Clients  int     // split over three cohorts
	Rate     float64 // calls per second per client
	Duration time.Duration
}

// DefaultScale is the fleet of `make bench`: 1,000 nodes, 5,000 containers
// (2,000 orders 1.0.0, 1,000 catalog 1.0.0, then 2,000 orders 1.1.0) and
// 100,000 clients over ten virtual minutes.
func DefaultScale() ScaleConfig {
	return ScaleConfig{Nodes: 1000, Clients: 100_000, Rate: 0.1, Duration: 10 * time.Minute}
}

// Scale builds the simulator's own load test: a fleet of cfg.Nodes nodes
// and five containers per node by the end, an upgrade of orders from 1.0.0
// to 1.1.0 in four waves, a cohort of clients moving to a new version in
// waves, the retirement of orders 1.0.0 and a node crash and restore. The
// registry publishes at most twice a second, as a registry answering
// 100,000 watchers would.
func Scale(cfg ScaleConfig) *Scenario {
	sc := New(fmt.Sprintf("scale-%dn-%dc", cfg.Nodes, cfg.Clients))
	sc.Description = "the simulator at fleet scale: an upgrade in waves under load"
	sc.Duration = cfg.Duration
	sc.ConvergeWithin = 2 * time.Minute
	sc.Registry.PublishInterval = 500 * time.Millisecond
	sc.AddNodes("n", cfg.Nodes)
	sc.Version("orders", "1.0.0", ">= 1.0, < 4.0")
	sc.Version("catalog", "1.0.0", ">= 1.0")
	sc.ContainerGroup("o1", 2*cfg.Nodes, nil, "orders@1.0.0")
	sc.ContainerGroup("c1", cfg.Nodes, nil, "catalog@1.0.0")
	per := cfg.Clients / 3
	sc.Cohort(CohortSpec{Name: "web", Clients: cfg.Clients - 2*per, Version: "2.4.0", Calls: []string{"orders", "catalog"}, Rate: cfg.Rate})
	sc.Cohort(CohortSpec{Name: "mobile", Clients: per, Version: "3.1.0", Calls: []string{"orders"}, Rate: cfg.Rate, OnNodes: true})
	sc.Cohort(CohortSpec{Name: "partner", Clients: per, Version: "1.9.0", Calls: []string{"orders", "catalog"}, Rate: cfg.Rate,
		Requires: map[string]string{"orders": "~> 1.0"}})

	frac := func(t float64) time.Duration { return time.Duration(t * float64(cfg.Duration)) }
	sc.At(frac(0.08), DeclareVersion{VersionSpec: VersionSpec{Service: "orders", Version: "1.1.0", Clients: ">= 1.0, < 4.0"}})
	wave := cfg.Nodes / 2
	for w := 0; w < 4; w++ {
		var acts []Action
		for i := 1; i <= wave; i++ {
			n := w*wave + i
			acts = append(acts, AddContainer{ContainerSpec{ID: fmt.Sprintf("o2-%d", n), Node: fmt.Sprintf("n-%d", (n-1)%cfg.Nodes+1),
				Services: []string{"orders@1.1.0"}}})
		}
		sc.At(frac(0.1+0.05*float64(w)), acts...)
	}
	for w := 0; w < 3; w++ {
		sc.At(frac(0.3+0.05*float64(w)), MoveCohort{Cohort: "partner", Version: "2.0.0", Fraction: 1.0 / 3})
	}
	sc.At(frac(0.5), RetireVersion{Service: "orders", Version: "1.0.0"})
	sc.At(frac(0.55), RemoveGroup("o1", 2*cfg.Nodes)...)
	sc.At(frac(0.6), CrashNode{Node: "n-7"})
	sc.At(frac(0.65), RestoreNode{Node: "n-7"})
	return sc
}
