package sim_test

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// TestSim runs the simulator's Ginkgo suites: the example scenarios on many
// seeds, determinism, the planted bugs each invariant must catch, and the
// scenario language.
func TestSim(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "sim")
}
