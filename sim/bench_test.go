package sim_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/sim"
)

// BenchmarkScale runs the fleet of sim.DefaultScale: 1,000 nodes, 5,000
// containers and 100,000 clients for ten virtual minutes. It reports the
// simulator's events per second and the wall time of one run.
func BenchmarkScale(b *testing.B) {
	runScale(b, sim.DefaultScale())
}

func runScale(b *testing.B, cfg sim.ScaleConfig) {
	sc := sim.Scale(cfg)
	var events uint64
	var wall time.Duration
	cpu0 := cpuTime(b)
	for i := 0; i < b.N; i++ {
		r, err := sim.Run(sc, sim.Options{Seed: uint64(i + 1), NoRecord: true})
		if err != nil {
			b.Fatal(err)
		}
		if !r.OK() {
			b.Errorf("seed %d: %d violations, first: %v", r.Seed, len(r.Violations), r.Violations[0])
		}
		events += r.Events
		wall += r.Wall
	}
	cpu := cpuTime(b) - cpu0
	b.ReportMetric(float64(events)/wall.Seconds(), "events/s")
	// On a shared machine the wall time depends on the load; the CPU time
	// (user and system, of the whole process) much less.
	b.ReportMetric(float64(events)/cpu.Seconds(), "events/cpu-s")
	b.ReportMetric(wall.Seconds()/float64(b.N), "wall-s/run")
	b.ReportMetric(float64(events)/float64(b.N), "events/run")
}

// BenchmarkScaleSmall is the same fleet at a tenth of the size.
func BenchmarkScaleSmall(b *testing.B) {
	runScale(b, sim.ScaleConfig{Nodes: 100, Clients: 10_000, Rate: 0.05, Duration: 10 * time.Minute})
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
