package sim_test

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/coexist-dev/coexist/sim"
)

// scenarioDir holds the example scenarios every seed must pass.
const scenarioDir = "../examples/scenarios"

var (
	parsedMu sync.Mutex
	parsed   = map[string]*sim.Scenario{}
)

// exampleFiles lists the example scenarios, sorted.
func exampleFiles() []string {
	files, err := filepath.Glob(filepath.Join(scenarioDir, "*.hcl"))
	if err != nil {
		panic(err)
	}
	sort.Strings(files)
	return files
}

// example parses an example scenario once.
func example(file string) *sim.Scenario {
	parsedMu.Lock()
	defer parsedMu.Unlock()
	if sc, ok := parsed[file]; ok {
		return sc
	}
	sc, err := sim.ParseFile(file)
	Expect(err).NotTo(HaveOccurred(), "parse %s", file)
	parsed[file] = sc
	return sc
}

// describe renders a result for a failure message: how to reproduce it,
// then the summary with every violation.
func describe(file string, r *sim.Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d; reproduce with: coexist sim run %s --seed %d\n", r.Seed, file, r.Seed)
	r.WriteSummary(&b)
	return b.String()
}

// expectClean fails with the seed and the summary unless every invariant
// held.
func expectClean(file string, r *sim.Result) {
	GinkgoHelper()
	if !r.OK() {
		Fail(describe(file, r))
	}
}

// violations returns the violations of one invariant.
func violations(r *sim.Result, inv sim.Invariant) []sim.Violation {
	var out []sim.Violation
	for _, v := range r.Violations {
		if v.Invariant == inv {
			out = append(out, v)
		}
	}
	return out
}
