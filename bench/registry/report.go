package main

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

type report struct {
	writes      []*writeResult
	fanouts     []*fanoutResult
	coexistLogs []string
}

func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

func dratio(a, b time.Duration) string { return ratio(float64(a), float64(b)) }

// addWrites pools a write phase with an earlier one of the same system and
// number of writers (--repeat).
func (r *report) addWrites(w *writeResult) {
	if old := r.write(w.system, w.writers); old != nil {
		old.ops += w.ops
		old.elapsed += w.elapsed
		old.lat = append(old.lat, w.lat...)
		slices.Sort(old.lat)
		old.errs += w.errs
		old.cpu += w.cpu
		if old.firstErr == "" {
			old.firstErr = w.firstErr
		}
		if w.retries != "" {
			old.retries = strings.TrimPrefix(old.retries+"; "+w.retries, "; ")
		}
		return
	}
	r.writes = append(r.writes, w)
}

func (r *report) write(system string, writers int) *writeResult {
	for _, w := range r.writes {
		if w.system == system && w.writers == writers {
			return w
		}
	}
	return nil
}

func (r *report) fanout(system, modePrefix string) *fanoutResult {
	for _, f := range r.fanouts {
		if f.system == system && strings.HasPrefix(f.mode, modePrefix) {
			return f
		}
	}
	return nil
}

// print writes the tables and answers whether every goal was met (or could
// not be judged because a system was not run).
func (r *report) print(o options) bool {
	ok := true
	fmt.Println()
	fmt.Println("WRITES (each a distinct key; coexist: PUT /v1/services/{s}/versions/{v} on the leader; etcd: POST /v3/kv/put on the leader)")
	fmt.Println("  (server CPU/op: user+system CPU of the 3 server processes in the measured window, per write)")
	fmt.Printf("  %-8s %-12s %10s %10s %10s %10s %8s %14s\n", "system", "phase", "writes", "writes/s", "p50", "p99", "errors", "server CPU/op")
	for _, n := range o.writers {
		phase := fmt.Sprintf("%d writer", n)
		if n > 1 {
			phase += "s"
		}
		c, e := r.write("coexist", n), r.write("etcd", n)
		for _, w := range []*writeResult{c, e} {
			if w == nil {
				continue
			}
			fmt.Printf("  %-8s %-12s %10d %10.0f %10s %10s %8d %14s\n", w.system, phase, w.ops, w.perSec(),
				fmtDur(percentile(w.lat, 0.5)), fmtDur(percentile(w.lat, 0.99)), w.errs, fmtDur(w.cpuPerWrite()))
			if w.errs > 0 {
				fmt.Printf("           first error: %s\n", w.firstErr)
			}
			if w.retries != "" {
				fmt.Printf("           %s\n", w.retries)
			}
		}
		if c != nil && e != nil {
			fmt.Printf("  %-21s %10s %10s %10s %10s %8s %14s\n", "coexist/etcd", "",
				ratio(c.perSec(), e.perSec()),
				dratio(percentile(c.lat, 0.5), percentile(e.lat, 0.5)),
				dratio(percentile(c.lat, 0.99), percentile(e.lat, 0.99)), "",
				dratio(c.cpuPerWrite(), e.cpuPerWrite()))
		}
	}

	if len(r.fanouts) > 0 {
		r.printFanouts(o)
	}
	fmt.Println()
	fmt.Printf("GOALS (load average at the end: %s)\n", loadAvg())
	verdict := func(pass bool) string {
		if pass {
			return "PASS"
		}
		ok = false
		return "MISS"
	}
	c64, e64 := r.write("coexist", 64), r.write("etcd", 64)
	if c64 != nil && e64 != nil {
		fmt.Printf("  64 writers, writes/s coexist/etcd >= 1.20:   %6s (%.0f vs %.0f)  %s\n",
			ratio(c64.perSec(), e64.perSec()), c64.perSec(), e64.perSec(), verdict(c64.perSec() >= 1.2*e64.perSec()))
		cp, ep := percentile(c64.lat, 0.99), percentile(e64.lat, 0.99)
		fmt.Printf("  64 writers, p99 coexist <= etcd:              %6s (%s vs %s)  %s\n",
			dratio(cp, ep), fmtDur(cp), fmtDur(ep), verdict(cp <= ep))
	} else {
		fmt.Println("  64 writers: not judged (needs both systems and --writers including 64)")
	}
	if cf := r.fanout("coexist", "?stale"); cf != nil {
		p := percentile(cf.rounds, 0.99)
		fmt.Printf("  fan-out p99 <= 20ms (coexist, ?stale spread): %s  %s\n", fmtDur(p), verdict(p <= 20*time.Millisecond && cf.timeouts == 0))
		fp := percentile(cf.inForce, 0.99)
		fmt.Printf("  commit -> in force p99 <= 100ms (%d watchers over 3 servers): %s  %s\n", cf.watchers, fmtDur(fp),
			verdict(len(cf.inForce) > 0 && cf.inForceErrs == 0 && fp <= 100*time.Millisecond))
		if e := r.fanout("etcd", ""); e != nil {
			ep := percentile(e.rounds, 0.99)
			fmt.Printf("  all watchers have seen it, p99 coexist/etcd <= 1.0: %s (%s vs %s)  %s\n", dratio(p, ep), fmtDur(p), fmtDur(ep),
				verdict(p <= ep && cf.timeouts == 0))
		}
	}
	if len(r.coexistLogs) > 0 {
		fmt.Println()
		fmt.Println("COEXIST SERVER LOGS (warnings and errors)")
		for _, l := range r.coexistLogs {
			fmt.Println("  " + l)
		}
	}
	return ok
}

func (r *report) printFanouts(o options) {
	fmt.Println()
	fmt.Printf("FAN-OUT (%d watchers; time from a write's acknowledgement until every watcher has seen its index/revision; %d rounds)\n", o.watchers, o.fanoutRounds)
	fmt.Println("  (first/half: p50 of the time until the first watcher, and half of them, had seen it)")
	fmt.Printf("  %-8s %-34s %9s %9s %9s %9s %11s %13s\n", "system", "mode", "p50", "p99", "max", "timeouts", "write p50", "first/half")
	for _, f := range r.fanouts {
		fmt.Printf("  %-8s %-34s %9s %9s %9s %9d %11s %13s\n", f.system, f.mode,
			fmtDur(percentile(f.rounds, 0.5)), fmtDur(percentile(f.rounds, 0.99)), fmtDur(percentile(f.rounds, 1)),
			f.timeouts, fmtDur(percentile(f.writeLat, 0.5)),
			fmtDur(percentile(f.first, 0.5))+"/"+fmtDur(percentile(f.half, 0.5)))
		if f.timeouts > 0 {
			fmt.Printf("           %d watcher-rounds had not seen the write after %v\n", f.missing, o.fanoutTimeout)
		}
	}
	for _, f := range r.fanouts {
		if len(f.inForce)+f.inForceErrs == 0 {
			continue
		}
		fmt.Printf("  %-8s %-34s commit -> in force (GET /v1/census/in-force on the leader): p50 %s, p99 %s, max %s, %d rounds not in force within %v\n",
			f.system, f.mode, fmtDur(percentile(f.inForce, 0.5)), fmtDur(percentile(f.inForce, 0.99)), fmtDur(percentile(f.inForce, 1)),
			f.inForceErrs, o.fanoutTimeout)
	}
	e := r.fanout("etcd", "")
	for _, c := range r.fanouts {
		if c.system != "coexist" || e == nil {
			continue
		}
		fmt.Printf("  %-43s %9s %9s %9s\n", "coexist/etcd ("+strings.SplitN(c.mode, ",", 2)[0]+")",
			dratio(percentile(c.rounds, 0.5), percentile(e.rounds, 0.5)),
			dratio(percentile(c.rounds, 0.99), percentile(e.rounds, 0.99)),
			dratio(percentile(c.rounds, 1), percentile(e.rounds, 1)))
	}
	for _, f := range r.fanouts {
		for _, n := range f.notes {
			fmt.Printf("  note, %s (%s): %s\n", f.system, f.mode, n)
		}
	}
}

// scanLogs summarises the warnings and errors of the servers' logs: a count
// per process and the first few distinct messages.
func scanLogs(ps []*proc) []string {
	var out []string
	for _, p := range ps {
		f, err := os.Open(p.logPath)
		if err != nil {
			continue
		}
		warn, errs := 0, 0
		seen := map[string]bool{}
		var samples []string
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			l := sc.Text()
			var lvl string
			switch {
			case strings.Contains(l, "[ERROR]"):
				errs++
				lvl = "[ERROR]"
			case strings.Contains(l, "[WARN]"):
				warn++
				lvl = "[WARN]"
			default:
				continue
			}
			// Drop the time stamp; keep the message without its values.
			if i := strings.Index(l, lvl); i >= 0 {
				l = l[i:]
			}
			key := l
			if i := strings.Index(key, "="); i > 0 {
				key = key[:i]
			}
			if !seen[key] && len(samples) < 6 {
				seen[key] = true
				if len(l) > 300 {
					l = l[:300] + "..."
				}
				samples = append(samples, l)
			}
		}
		f.Close()
		if warn+errs > 0 {
			out = append(out, fmt.Sprintf("%s: %d warnings, %d errors (%s)", p.name, warn, errs, p.logPath))
			for _, s := range samples {
				out = append(out, "  "+s)
			}
		}
	}
	return out
}
