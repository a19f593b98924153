package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

type report struct {
	machine, loadStart, loadEnd string
	endpoint                    string
	greeterPID                  int
	targets                     []*target
	throughput                  []*loadResult
	latency                     []*loadResult
	directCap                   float64
	deploys                     []*deployRound
	agentLog                    []string
	agentIdle                   float64 // share of one CPU
	busyStart, busyEnd          float64 // share of the machine's CPUs busy, before and after
}

// pool merges the runs of one target with one generator (and, open loop,
// one rate): calls and time add up, latencies merge; wrk's percentiles are
// averaged over the runs.
func pool(rs []*loadResult, target, gen string, rate float64) *loadResult {
	var out *loadResult
	n := 0
	for _, r := range rs {
		if r.target != target || r.generator != gen || r.rate != rate {
			continue
		}
		n++
		if out == nil {
			c := *r
			c.lat = slices.Clone(r.lat)
			c.schedLat = slices.Clone(r.schedLat)
			if r.wrkPct != nil {
				c.wrkPct = map[int]time.Duration{}
				for k, v := range r.wrkPct {
					c.wrkPct[k] = v
				}
			}
			out = &c
			continue
		}
		out.calls += r.calls
		out.elapsed += r.elapsed
		out.errs += r.errs
		out.non200 += r.non200
		out.wrongPeer += r.wrongPeer
		out.lateSends += r.lateSends
		out.proxyCPU += r.proxyCPU
		out.greeterCPU += r.greeterCPU
		out.genCPU += r.genCPU
		if out.firstErr == "" {
			out.firstErr = r.firstErr
		}
		out.lat = append(out.lat, r.lat...)
		out.schedLat = append(out.schedLat, r.schedLat...)
		for k, v := range r.wrkPct {
			out.wrkPct[k] += v
		}
	}
	if out == nil {
		return nil
	}
	if n > 1 {
		slices.Sort(out.lat)
		slices.Sort(out.schedLat)
		for k := range out.wrkPct {
			out.wrkPct[k] /= time.Duration(n)
		}
	}
	return out
}

func (r *report) generators() []string {
	var gs []string
	for _, x := range r.throughput {
		if !slices.Contains(gs, x.generator) {
			gs = append(gs, x.generator)
		}
	}
	return gs
}

// directCapacity is the direct target's closed-loop calls/s, by wrk when it
// ran.
func (r *report) directCapacity() float64 {
	for _, g := range []string{"wrk", "go"} {
		if p := pool(r.throughput, r.targets[0].name, g, 0); p != nil {
			return p.perSec()
		}
	}
	return 0
}

func (r *report) gatewayName() string { return r.targets[len(r.targets)-1].name }

func (r *report) nginxNames() []string {
	var ns []string
	for _, t := range r.targets {
		if t.nginx != nil {
			ns = append(ns, t.name)
		}
	}
	return ns
}

func cpuPer(d time.Duration, calls int64) string {
	if calls == 0 || d == 0 {
		return "-"
	}
	return fmtDur(d / time.Duration(calls))
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

// print writes the tables and answers whether every goal judged was met.
func (r *report) print(o *options) bool {
	ok := true
	verdict := func(pass bool) string {
		if pass {
			return "PASS"
		}
		ok = false
		return "MISS"
	}
	var goals []string
	fmt.Println()
	fmt.Printf("MACHINE  %s\n", r.machine)
	fmt.Printf("         load average %s at the start, %s at the end; CPUs busy before the start %.0f%%, after the end %.0f%%\n",
		r.loadStart, r.loadEnd, 100*r.busyStart, 100*r.busyEnd)
	fmt.Println("         (a shared machine: the load generator and every process under test share these CPUs, and the load average")
	fmt.Println("         counts this benchmark's own processes while it runs)")
	fmt.Printf("         greeter container pid %d at %s; coexist agent idle: %.1f%% of one CPU\n", r.greeterPID, r.endpoint, 100*r.agentIdle)

	if len(r.throughput) > 0 {
		fmt.Println()
		fmt.Printf("THROUGHPUT (closed loop, %d connections, %v per run after %v warm-up, x%d; CPU/call: user+system CPU of the\n", o.connections, o.duration, o.warmup, o.repeat)
		fmt.Println("  proxy (nginx master+workers, or the whole coexist agent process), of the greeter, and of the load generator)")
		fmt.Printf("  %-19s %-4s %10s %9s %9s %9s %8s %9s %11s %11s %9s\n", "target", "gen", "calls/s", "p50", "p90", "p99", "errors", "non-2xx", "proxy CPU", "greeter CPU", "gen CPU")
		for _, g := range r.generators() {
			for _, t := range r.targets {
				p := pool(r.throughput, t.name, g, 0)
				if p == nil {
					continue
				}
				bad := fmt.Sprint(p.non200)
				if p.wrongPeer > 0 {
					bad += fmt.Sprintf(" (+%d wrong container)", p.wrongPeer)
				}
				fmt.Printf("  %-19s %-4s %10.0f %9s %9s %9s %8d %9s %11s %11s %9s\n", t.name, g, p.perSec(),
					fmtDur(p.pct(50)), fmtDur(p.pct(90)), fmtDur(p.pct(99)), p.errs, bad,
					cpuPer(p.proxyCPU, p.calls), cpuPer(p.greeterCPU, p.calls), cpuPer(p.genCPU, p.calls))
				if p.errs > 0 && p.firstErr != "" {
					fmt.Printf("  %19s first error: %s\n", "", p.firstErr)
				}
			}
		}
		gw := r.gatewayName()
		for _, g := range r.generators() {
			pg := pool(r.throughput, gw, g, 0)
			pd := pool(r.throughput, r.targets[0].name, g, 0)
			for _, n := range r.nginxNames() {
				pn := pool(r.throughput, n, g, 0)
				if pg == nil || pn == nil {
					continue
				}
				line := fmt.Sprintf("  gateway / %-18s (%s): %s calls/s", n, g, ratio(pg.perSec(), pn.perSec()))
				if pd != nil {
					line += fmt.Sprintf("   (of direct: gateway %s, %s %s)", ratio(pg.perSec(), pd.perSec()), n, ratio(pn.perSec(), pd.perSec()))
				}
				fmt.Println(line)
				if pg.proxyCPU > 0 && pn.proxyCPU > 0 {
					fmt.Printf("  %31s proxy CPU per call: gateway %s, %s %s (%s)\n", "", cpuPer(pg.proxyCPU, pg.calls), n, cpuPer(pn.proxyCPU, pn.calls),
						ratio(float64(pg.proxyCPU)/float64(pg.calls), float64(pn.proxyCPU)/float64(pn.calls)))
				}
				if g == "wrk" || !slices.Contains(r.generators(), "wrk") {
					goals = append(goals, fmt.Sprintf("  throughput gateway/%s >= 1.0 (%s): %s (%.0f vs %.0f calls/s)  %s",
						n, g, ratio(pg.perSec(), pn.perSec()), pg.perSec(), pn.perSec(), verdict(pg.perSec() >= pn.perSec())))
				}
			}
		}
	}

	if len(r.latency) > 0 {
		var rates []float64
		for _, x := range r.latency {
			if !slices.Contains(rates, x.rate) {
				rates = append(rates, x.rate)
			}
		}
		for i, rate := range rates {
			fmt.Println()
			what := fmt.Sprintf("%.0f calls/s", rate)
			if i == 0 && r.directCap > 0 && o.rate <= 0 {
				what += fmt.Sprintf(" = half the direct capacity (%.0f calls/s)", r.directCap)
			} else if i > 0 {
				what += " (light load, for reference)"
			}
			fmt.Printf("ADDED LATENCY (open loop at %s, %d connections, %v per run after %v warm-up, x%d;\n", what, o.latencyConns, o.duration, o.warmup, o.repeat)
			fmt.Println("  latency from the write of the request to the end of the answer; \"slot p99\": from the scheduled send time)")
			fmt.Println("  late: calls sent more than 2ms after their slot (the generator or the target fell behind: over 5%, the rate is")
			fmt.Println("  more than this target, with the generator beside it on this machine, can take, and its latency is mostly queueing)")
			fmt.Printf("  %-19s %9s %9s %9s %9s %9s %6s %7s %10s %10s %10s %8s\n", "target", "calls/s", "p50", "p90", "p99", "slot p99", "late", "errors", "added p50", "added p99", "proxy CPU", "gen CPU")
			d := pool(r.latency, r.targets[0].name, "go", rate)
			for _, t := range r.targets {
				p := pool(r.latency, t.name, "go", rate)
				if p == nil {
					continue
				}
				a50, a99 := "-", "-"
				if d != nil && t != r.targets[0] {
					a50, a99 = fmtDur(p.pct(50)-d.pct(50)), fmtDur(p.pct(99)-d.pct(99))
				}
				late := 0.0
				if p.calls > 0 {
					late = float64(p.lateSends) / float64(p.calls)
				}
				flag := ""
				if late > 0.05 {
					flag = "  OVERLOADED"
				}
				fmt.Printf("  %-19s %9.0f %9s %9s %9s %9s %5.1f%% %7d %10s %10s %10s %8s%s\n", t.name, p.perSec(),
					fmtDur(p.pct(50)), fmtDur(p.pct(90)), fmtDur(p.pct(99)), fmtDur(percentile(p.schedLat, 0.99)),
					100*late, p.errs+p.non200+p.wrongPeer, a50, a99, cpuPer(p.proxyCPU, p.calls), cpuPer(p.genCPU, p.calls), flag)
				if p.errs > 0 && p.firstErr != "" {
					fmt.Printf("  %19s first error: %s\n", "", p.firstErr)
				}
			}
			if g := pool(r.latency, r.gatewayName(), "go", rate); i == 0 && g != nil && d != nil {
				added := g.pct(50) - d.pct(50)
				var others []string
				for _, n := range r.nginxNames() {
					if p := pool(r.latency, n, "go", rate); p != nil {
						others = append(others, fmt.Sprintf("%s: %s", n, fmtDur(p.pct(50)-d.pct(50))))
					}
				}
				goals = append(goals, fmt.Sprintf("  added p50 at %.0f calls/s <= 100µs: gateway %s (%s)  %s",
					rate, fmtDur(added), strings.Join(others, ", "), verdict(added <= 100*time.Microsecond && g.errs == 0)))
			}
		}
	}

	if len(r.deploys) > 0 {
		fmt.Println()
		fmt.Println("DEPLOY (T0: just before PUT /v1/containers/{id} of a new container holding a new, higher greeter version;")
		fmt.Printf("  first call: the first gateway answer, polled every %v, with Coexist-Served-By naming it; exec: the container's\n", pollEvery)
		fmt.Println("  started_at as the agent reports it; floor: exec of the greeter binary to its first /healthz answer, polled every 1ms)")
		fmt.Printf("  %-10s %-8s %11s %9s %12s %9s %7s\n", "round", "version", "first call", "exec", "exec->call", "floor", "bad")
		var total, floor, exec, after []time.Duration
		bad := 0
		for _, d := range r.deploys {
			name := d.id
			if d.warmup {
				name += "*"
			}
			e, ea := "-", "-"
			if d.exec > 0 {
				e, ea = fmtDur(d.exec), fmtDur(d.total-d.exec)
			}
			fmt.Printf("  %-10s %-8s %11s %9s %12s %9s %7d\n", name, d.version, fmtDur(d.total), e, ea, fmtDur(d.floor), d.badCalls)
			if d.warmup {
				continue
			}
			total = append(total, d.total)
			floor = append(floor, d.floor)
			if d.exec > 0 {
				exec = append(exec, d.exec)
				after = append(after, d.total-d.exec)
			}
			bad += d.badCalls
		}
		fmt.Println("  (* warm-up round, not counted)")
		for _, s := range [][]time.Duration{total, floor, exec, after} {
			slices.Sort(s)
		}
		fmt.Printf("  %-21s %11s %9s %12s %9s\n", "", "first call", "exec", "exec->call", "floor")
		for _, q := range []struct {
			name string
			q    float64
		}{{"median", 0.5}, {"p90", 0.9}, {"max", 1}} {
			fmt.Printf("  %-21s %11s %9s %12s %9s\n", q.name, fmtDur(percentile(total, q.q)), fmtDur(percentile(exec, q.q)),
				fmtDur(percentile(after, q.q)), fmtDur(percentile(floor, q.q)))
		}
		dm := percentile(total, 0.5) - percentile(floor, 0.5)
		d90 := percentile(total, 0.9) - percentile(floor, 0.9)
		fmt.Printf("  first call - floor: median %s, p90 %s; calls answered other than 200 while deploying: %d\n", fmtDur(dm), fmtDur(d90), bad)
		goals = append(goals, fmt.Sprintf("  deploy to first call, median - floor median <= 50ms: %s (%s vs %s; p90 %s vs %s)  %s",
			fmtDur(dm), fmtDur(percentile(total, 0.5)), fmtDur(percentile(floor, 0.5)),
			fmtDur(percentile(total, 0.9)), fmtDur(percentile(floor, 0.9)), verdict(dm <= 50*time.Millisecond && bad == 0)))
	}

	fmt.Println()
	fmt.Printf("GOALS (load average: %s at the start, %s at the end)\n", r.loadStart, r.loadEnd)
	for _, g := range goals {
		fmt.Println(g)
	}
	if len(r.agentLog) > 0 {
		fmt.Println()
		fmt.Println("AGENT LOG (warnings and errors)")
		for _, l := range r.agentLog {
			fmt.Println("  " + l)
		}
	}
	return ok
}
