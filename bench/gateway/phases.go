package main

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// order answers the targets in the order of run r: reversed every other
// run, so that a drift of the machine's load favours no target.
func order(targets []*target, r int) []*target {
	ts := slices.Clone(targets)
	if r%2 == 1 {
		slices.Reverse(ts)
	}
	return ts
}

// measured runs f and notes the CPU time the target's proxy and the greeter
// used meanwhile.
func measured(t *target, greeterPID int, f func() (*loadResult, error)) (*loadResult, error) {
	p0, g0, s0 := t.proxyTicks(), cpuTicks([]int{greeterPID}, nil), rusageSelf()
	r, err := f()
	if err != nil {
		return nil, err
	}
	p1, g1, s1 := t.proxyTicks(), cpuTicks([]int{greeterPID}, nil), rusageSelf()
	r.target = t.name
	r.proxyCPU = ticksToDuration(p1 - p0)
	r.greeterCPU = ticksToDuration(g1 - g0)
	if r.generator == "go" {
		r.genCPU = s1 - s0
	}
	return r, nil
}

func runThroughput(ctx context.Context, o *options, targets []*target, greeterPID int, rep *report) error {
	for r := 0; r < o.repeat; r++ {
		for _, t := range order(targets, r) {
			if o.wrkBin != "" {
				step("throughput: wrk -t%d -c%d against %s (%s), %v warm-up + %v; load average %s", o.threads, o.connections, t.name, t.addr, o.warmup, o.duration, loadAvg())
				if o.warmup > 0 {
					if _, err := runWrk(ctx, o.wrkBin, t.addr, o.threads, o.connections, o.warmup); err != nil {
						return err
					}
				}
				res, err := measured(t, greeterPID, func() (*loadResult, error) {
					return runWrk(ctx, o.wrkBin, t.addr, o.threads, o.connections, o.duration)
				})
				if err != nil {
					return err
				}
				step("  %.0f calls/s, p50 %s, p99 %s, %d errors, %d non-2xx", res.perSec(), fmtDur(res.pct(50)), fmtDur(res.pct(99)), res.errs, res.non200)
				rep.throughput = append(rep.throughput, res)
			}
			if o.goLoad {
				step("throughput: Go generator, %d connections, against %s, %v warm-up + %v", o.connections, t.name, o.warmup, o.duration)
				res, err := measured(t, greeterPID, func() (*loadResult, error) {
					return closedLoop(ctx, t.addr, o.connections, o.warmup, o.duration, t.servedBy), nil
				})
				if err != nil {
					return err
				}
				step("  %.0f calls/s, p50 %s, p99 %s, %d errors, %d non-200, %d served by another", res.perSec(), fmtDur(res.pct(50)), fmtDur(res.pct(99)), res.errs, res.non200, res.wrongPeer)
				rep.throughput = append(rep.throughput, res)
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err := checkTarget(ctx, t); err != nil {
				return err
			}
		}
	}
	return nil
}

func runLatency(ctx context.Context, o *options, targets []*target, rate float64, greeterPID int, rep *report) error {
	for r := 0; r < o.repeat; r++ {
		for _, t := range order(targets, r) {
			step("latency: open loop at %.0f calls/s, %d connections, against %s, %v warm-up + %v; load average %s", rate, o.latencyConns, t.name, o.warmup, o.duration, loadAvg())
			res, err := measured(t, greeterPID, func() (*loadResult, error) {
				return openLoop(ctx, t.addr, o.latencyConns, rate, o.warmup, o.duration, t.servedBy), nil
			})
			if err != nil {
				return err
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			step("  %.0f calls/s, p50 %s, p90 %s, p99 %s (from the slot: p99 %s), %d late sends, %d errors, %d non-200, %d served by another",
				res.perSec(), fmtDur(res.pct(50)), fmtDur(res.pct(90)), fmtDur(res.pct(99)), fmtDur(percentile(res.schedLat, 0.99)),
				res.lateSends, res.errs, res.non200, res.wrongPeer)
			rep.latency = append(rep.latency, res)
		}
	}
	return nil
}

func fmtDur(d time.Duration) string {
	neg := ""
	if d < 0 {
		neg, d = "-", -d
	}
	var s string
	switch {
	case d == 0:
		s = "0"
	case d < time.Millisecond:
		s = fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Millisecond:
		s = fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		s = fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	default:
		s = fmt.Sprintf("%.2fs", d.Seconds())
	}
	return neg + s
}
