package sim_test

import (
	"errors"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/coexist-dev/coexist/sim"
)

// base is a valid scenario the error cases below break one line at a time.
const base = `scenario "t" {
  converge_within = "30s"
}
nodes {
  prefix = "n"
  count  = 2
}
service "greeter" {
  version "1.0.0" {
    clients = ">= 1.0, < 2.0"
  }
}
containers "g1" {
  count    = 2
  services = ["greeter@1.0.0"]
}
cohort "web" {
  clients = 10
  version = "1.2.0"
  calls   = ["greeter"]
}
`

var _ = Describe("scenario files", func() {
	It("parse into the scenario the Go builder makes, which runs the same", func() {
		file := filepath.Join(scenarioDir, "rolling-upgrade.hcl")
		fromFile := example(file)

		b := sim.New("rolling-upgrade")
		b.Description = "replace greeter 1.0.0 by 1.1.0, one container at a time"
		b.AddNodes("n", 3)
		b.Version("greeter", "1.0.0", ">= 1.0, < 2.0")
		b.ContainerGroup("g1", 3, nil, "greeter@1.0.0")
		b.Cohort(sim.CohortSpec{Name: "web", Clients: 100, Version: "1.2.0", Calls: []string{"greeter"}, Rate: 0.5})
		add := func(id, node string) sim.Action {
			return sim.AddContainer{ContainerSpec: sim.ContainerSpec{ID: id, Node: node, Services: []string{"greeter@1.1.0"}}}
		}
		b.At(20*time.Second, sim.DeclareVersion{VersionSpec: sim.VersionSpec{Service: "greeter", Version: "1.1.0", Clients: ">= 1.0, < 2.0"}}, add("g2-1", "n-1"))
		b.At(26*time.Second, sim.RemoveContainer{ID: "g1-1"}, add("g2-2", "n-2"))
		b.At(32*time.Second, sim.RemoveContainer{ID: "g1-2"}, add("g2-3", "n-3"))
		b.At(38*time.Second, sim.RemoveContainer{ID: "g1-3"})
		b.At(44*time.Second, sim.RetireVersion{Service: "greeter", Version: "1.0.0"})
		Expect(b.Validate()).To(Succeed())

		for _, seed := range []uint64{1, 2} {
			a, err := sim.Run(fromFile, sim.Options{Seed: seed, NoRecord: true})
			Expect(err).NotTo(HaveOccurred())
			c, err := sim.Run(b, sim.Options{Seed: seed, NoRecord: true})
			Expect(err).NotTo(HaveOccurred())
			Expect(c.TraceHex()).To(Equal(a.TraceHex()), "seed %d", seed)
		}
	})

	It("accept the base of the error cases", func() {
		_, err := sim.Parse([]byte(base), "base.hcl")
		Expect(err).NotTo(HaveOccurred())
	})

	DescribeTable("are rejected with the file, the line and what is wrong",
		func(src, wantPos, wantMsg string) {
			_, err := sim.Parse([]byte(src), "bad.hcl")
			Expect(err).To(HaveOccurred())
			var ve *sim.ValidationError
			Expect(errors.As(err, &ve)).To(BeTrue(), "%v", err)
			Expect(err.Error()).To(ContainSubstring(wantPos), "%v", err)
			Expect(err.Error()).To(ContainSubstring(wantMsg), "%v", err)
		},
		Entry("HCL syntax", base+"step \"10s\" {\n  heal { name = }\n}\n", "bad.hcl:23:", "Invalid expression"),
		Entry("an unknown attribute", strings.Replace(base, `  count  = 2`, "  count  = 2\n  size = 3", 1), "bad.hcl:7:", `An argument named "size" is not expected here`),
		Entry("an unknown block", base+"deploy {}\n", "bad.hcl:22:", `Blocks of type "deploy" are not expected here`),
		Entry("a missing attribute", base+"step \"10s\" {\n  retire_version { service = \"greeter\" }\n}\n", "bad.hcl:23:", `The argument "version" is required`),
		Entry("a step time that is not a duration", base+"step \"soon\" {\n  heal { name = \"x\" }\n}\n", "bad.hcl:22:", "Invalid step time"),
		Entry("a bad distribution", base+"network {\n  latency = \"uniform(5ms)\"\n}\n", "bad.hcl:23:", "uniform takes 2 durations, got 1"),
		Entry("a bad duration", strings.Replace(base, `converge_within = "30s"`, `converge_within = "30 seconds"`, 1), "bad.hcl:2:", `"30 seconds" is not a duration`),
		Entry("a count that is not a number", strings.Replace(base, "count  = 2", `count  = "two"`, 1), "bad.hcl:6:", "count must be a whole number"),
		Entry("a version that does not parse", strings.Replace(base, `version "1.0.0" {`, `version "one" {`, 1), "bad.hcl:9:", `version: "one" is not a valid version`),
		Entry("a range that does not parse", strings.Replace(base, `">= 1.0, < 2.0"`, `">= 1.0 <"`, 1), "bad.hcl:10:15:", "clients:"),
		Entry("a container on an unknown node", base+"container \"x\" {\n  node = \"n-9\"\n  services = [\"greeter@1.0.0\"]\n}\n", "bad.hcl:23:10:", `node "n-9" is not declared`),
		Entry("a container holding a version not declared yet", base+"step \"10s\" {\n  add_container {\n    id = \"g2-1\"\n    node = \"n-1\"\n    services = [\"greeter@2.0.0\"]\n  }\n}\n", "bad.hcl:26:16:", "greeter@2.0.0 is not declared by 10s"),
		Entry("two versions of one service in a container", base+"container \"x\" {\n  node = \"n-1\"\n  services = [\"greeter@1.0.0\", \"greeter@1.0.0\"]\n}\n", "bad.hcl:24:14:", "at most one version of service"),
		Entry("a cohort calling an unknown service", strings.Replace(base, `calls   = ["greeter"]`, `calls   = ["orders"]`, 1), "bad.hcl:20:13:", `calls service "orders", which is never declared`),
		Entry("a heal without its partition", base+"step \"10s\" {\n  heal { name = \"p\" }\n}\n", "bad.hcl:23:", `no partition "p" in place`),
		Entry("a bad partition endpoint", base+"step \"10s\" {\n  partition {\n    name = \"p\"\n    a = [\"cohort:web\"]\n    b = [\"database\"]\n  }\n}\n", "bad.hcl:26:9:", `endpoint "database"`),
		Entry("a restore of a node that is up", base+"step \"10s\" {\n  restore_node { node = \"n-1\" }\n}\n", "bad.hcl:23:", `node "n-1" is not crashed`),
		Entry("a move of an unknown cohort", base+"step \"10s\" {\n  move_cohort {\n    cohort = \"app\"\n    version = \"2.0.0\"\n    fraction = 0.5\n  }\n}\n", "bad.hcl:24:14:", `cohort "app" is not declared`),
		Entry("a step after the end", strings.Replace(base, `converge_within = "30s"`, "converge_within = \"30s\"\n  duration = \"1m\"", 1)+"step \"2m\" {\n  heal { name = \"p\" }\n}\n", "bad.hcl:23:", "after the end of the run"),
		Entry("no scenario block", strings.Replace(base, `scenario "t" {`+"\n  converge_within = \"30s\"\n}\n", "", 1), "bad.hcl:", "Missing scenario block"),
	)

	It("report every problem in one pass, the decoder's and the validator's, in line order, at the attribute", func() {
		// Line 6: a count that is not a number (the decoder); line 20: a
		// cohort calling a service never declared, line 23: a container
		// on a node never declared, line 25: a step retiring a version
		// never declared (the validator).
		src := strings.Replace(strings.Replace(base, "count    = 2", `count    = "two"`, 1), `calls   = ["greeter"]`, `calls   = ["orders"]`, 1) +
			"container \"x\" {\n  node = \"n-9\"\n  services = [\"greeter@1.0.0\"]\n}\n" +
			"step \"10s\" {\n  retire_version {\n    service = \"greeter\"\n    version = \"3.0.0\"\n  }\n}\n"
		_, err := sim.Parse([]byte(src), "bad.hcl")
		var ve *sim.ValidationError
		Expect(errors.As(err, &ve)).To(BeTrue(), "%v", err)
		var got []string
		for _, p := range ve.Problems {
			got = append(got, p.String())
		}
		Expect(got).To(HaveExactElements(
			HavePrefix(`bad.hcl:14:14: Invalid count; count must be a whole number`),
			HavePrefix(`bad.hcl:20:13: cohort "web" calls service "orders", which is never declared`),
			HavePrefix(`bad.hcl:23:10: container "x": node "n-9" is not declared`),
			HavePrefix(`bad.hcl:29:15: retire greeter@3.0.0: not declared by 10s`),
		))
	})

	DescribeTable("report what the decoder found once, without what follows from it",
		func(src, want string) {
			_, err := sim.Parse([]byte(src), "bad.hcl")
			var ve *sim.ValidationError
			Expect(errors.As(err, &ve)).To(BeTrue(), "%v", err)
			Expect(ve.Problems).To(HaveLen(1), "%v", err)
			Expect(ve.Problems[0].String()).To(ContainSubstring(want))
		},
		Entry("nodes whose count does not read: no 'no node', no container on an unknown node",
			strings.Replace(base, "count  = 2", `count  = "two"`, 1), "bad.hcl:6:12: Invalid count"),
		Entry("a container group whose count does not read: no step naming its containers is wrong",
			strings.Replace(base, "count    = 2", `count    = "two"`, 1)+"step \"10s\" {\n  remove_container { id = \"g1-1\" }\n}\n", "bad.hcl:14:14: Invalid count"),
		Entry("a required attribute missing: not also an empty value",
			base+"step \"10s\" {\n  retire_version { service = \"greeter\" }\n}\n", `The argument "version" is required`),
		Entry("a cohort whose clients do not read: not also too few clients",
			strings.Replace(base, "clients = 10", `clients = "ten"`, 1), "bad.hcl:18:13: Invalid clients"),
		Entry("a step whose time does not read: the heal at a later step is not wrong",
			base+"step \"soon\" {\n  partition {\n    name = \"p\"\n    a = [\"clients\"]\n    b = [\"registry\"]\n  }\n}\nstep \"20s\" {\n  heal { name = \"p\" }\n}\n",
			"bad.hcl:22:6: Invalid step time"),
	)

	It("report every problem, not only the first", func() {
		src := strings.Replace(base, `node`, `nod`, 0) + "container \"x\" {\n  node = \"n-9\"\n  services = [\"greeter@3.0.0\"]\n}\n"
		_, err := sim.Parse([]byte(src), "bad.hcl")
		var ve *sim.ValidationError
		Expect(errors.As(err, &ve)).To(BeTrue())
		Expect(ve.Problems).To(HaveLen(2))
	})
})

var _ = Describe("distributions", func() {
	DescribeTable("parse and print",
		func(in, out string, maxd time.Duration) {
			d, err := sim.ParseDist(in)
			Expect(err).NotTo(HaveOccurred())
			Expect(d.String()).To(Equal(out))
			Expect(d.Max()).To(Equal(maxd))
		},
		Entry("a constant", "5ms", "5ms", 5*time.Millisecond),
		Entry("uniform", "uniform(1ms, 4ms)", "uniform(1ms, 4ms)", 4*time.Millisecond),
		Entry("exponential, cut at eight means", "exp(2ms)", "exp(2ms)", 16*time.Millisecond),
		Entry("normal, cut at four deviations", "normal(10ms,1ms)", "normal(10ms, 1ms)", 14*time.Millisecond),
	)
})

var _ = Describe("the language reference", func() {
	It("parses and runs clean", func() {
		sc, err := sim.ParseFile("testdata/reference.hcl")
		Expect(err).NotTo(HaveOccurred())
		for _, seed := range []uint64{1, 2} {
			r, err := sim.Run(sc, sim.Options{Seed: seed, NoRecord: true})
			Expect(err).NotTo(HaveOccurred())
			expectClean("sim/testdata/reference.hcl", r)
		}
	})
})
