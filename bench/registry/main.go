// Command registry benchmarks a 3-server coexist registry against a 3-member
// etcd 3.4 cluster on this machine, with the same load: write throughput and
// latency at 1 and 64 concurrent writers, and the fan-out time from a write's
// acknowledgement until 1,000 watchers have all seen it.
//
//	go build -o bin/coexist ./cmd/coexist
//	go run ./bench/registry --coexist-bin bin/coexist
//
// Both clusters run on loopback with fsync on (coexist: raft-boltdb; etcd:
// its WAL), with their data dirs on the same file system. The write phases
// run on one fresh cluster of each system, started together, alternating
// which system goes first (ABBA); each fan-out mode then runs on a fresh
// cluster of its own, one system at a time, so that the fan-out reads a
// small table and no phase inherits another's damage. The servers and this
// load generator share the machine's CPUs: the report prints the load
// average, and the servers' CPU time per write.
//
// Fan-out: coexist watchers are goroutines looping on blocking queries
// (GET /v1/services?index=N&wait=30s), with ?stale spread evenly over the
// three servers, and again in the default mode, all on the leader; etcd
// watchers are watches of a key prefix, one streaming POST /v3/watch each
// over the gRPC gateway, spread evenly over the three members. A round is
// one write; it ends when every watcher has seen an index (coexist:
// X-Coexist-Index) or revision (etcd: the event's mod_revision) at least the
// write's, and is timed from the write's acknowledgement. Coexist watchers
// say who they are, as SDK clients do, so the registry's census counts them;
// each coexist round also times, from the same acknowledgement, the leader's
// answer that the write is in force (GET /v1/census/in-force: every live
// watcher has asked with its index).
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	coexistBin, etcdBin string
	dir                 string
	keepDirs            bool
	duration, warmup    time.Duration
	writers             []int
	repeat              int
	watchers            int
	fanoutRounds        int
	fanoutGap           time.Duration
	fanoutTimeout       time.Duration
	fanoutPath          string
	coexistDefault      bool
	systems             []string
	timeout             time.Duration
	check               bool
}

func main() {
	os.Exit(run())
}

func run() (code int) {
	var o options
	var writers, systems string
	flag.StringVar(&o.coexistBin, "coexist-bin", "bin/coexist", "path of the coexist binary (go build -o bin/coexist ./cmd/coexist)")
	flag.StringVar(&o.etcdBin, "etcd-bin", "etcd", "etcd 3.4 server binary (Debian: apt-get install etcd-server)")
	flag.StringVar(&o.dir, "dir", os.TempDir(), "directory under which the data dirs and logs are made (fsync is only meaningful on a real disk, not tmpfs)")
	flag.BoolVar(&o.keepDirs, "keep-dirs", false, "keep the data dirs and server logs")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured duration of each write phase")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured warm-up before each write phase")
	flag.StringVar(&writers, "writers", "1,64", "numbers of concurrent writers, one write phase each per system (empty: none)")
	flag.IntVar(&o.repeat, "repeat", 1, "run each write phase this many times per system, interleaved, and pool the results")
	flag.IntVar(&o.watchers, "watchers", 1000, "watchers in the fan-out phase")
	flag.IntVar(&o.fanoutRounds, "fanout-rounds", 50, "measured fan-out rounds (one write each)")
	flag.DurationVar(&o.fanoutGap, "fanout-gap", 100*time.Millisecond, "pause between fan-out rounds")
	flag.DurationVar(&o.fanoutTimeout, "fanout-timeout", 10*time.Second, "give up on a fan-out round after this long")
	flag.StringVar(&o.fanoutPath, "fanout-path", "/v1/services", "what coexist watchers watch with blocking queries")
	flag.StringVar(&fanoutKeys, "fanout-keys", "versions", "what a fan-out round writes: versions (a new version of one service) or services (a new service)")
	flag.BoolVar(&o.coexistDefault, "coexist-default-mode", true, "also measure coexist fan-out with default (leader) reads")
	flag.StringVar(&systems, "systems", "coexist,etcd", "systems to run")
	flag.DurationVar(&o.timeout, "timeout", 20*time.Minute, "give up on the whole run after this long")
	flag.BoolVar(&o.check, "check", false, "exit 1 when a goal is missed")
	flag.Parse()
	for _, s := range strings.Split(writers, ",") {
		if strings.TrimSpace(s) == "" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "--writers: %q is not a positive number\n", s)
			return 2
		}
		o.writers = append(o.writers, n)
	}
	for _, s := range strings.Split(systems, ",") {
		s = strings.TrimSpace(s)
		if s != "coexist" && s != "etcd" {
			fmt.Fprintf(os.Stderr, "--systems: unknown system %q (coexist, etcd)\n", s)
			return 2
		}
		o.systems = append(o.systems, s)
	}
	if fanoutKeys != "versions" && fanoutKeys != "services" {
		fmt.Fprintf(os.Stderr, "--fanout-keys: %q is neither versions nor services\n", fanoutKeys)
		return 2
	}
	if o.watchers < 0 || o.fanoutRounds < 1 || o.repeat < 1 {
		fmt.Fprintln(os.Stderr, "--fanout-rounds and --repeat must be at least 1, --watchers at least 0 (0: no fan-out)")
		return 2
	}

	// Binaries first: a clear error before anything starts.
	if slices.Contains(o.systems, "coexist") {
		p, err := exec.LookPath(o.coexistBin)
		if err != nil {
			if !strings.Contains(o.coexistBin, "/") {
				p, err = exec.LookPath("./" + o.coexistBin)
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "coexist binary %q not found: build it with `go build -o bin/coexist ./cmd/coexist` (or `make build`)\n", o.coexistBin)
				return 1
			}
		}
		o.coexistBin, _ = filepath.Abs(p)
	}
	if slices.Contains(o.systems, "etcd") {
		p, err := exec.LookPath(o.etcdBin)
		if err != nil {
			fmt.Fprintf(os.Stderr, "etcd not found (%v): install etcd-server: apt-get install etcd-server\n", err)
			return 1
		}
		o.etcdBin = p
	}

	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "\n%v: stopping the servers (again to kill them at once)\n", s)
		cancel()
		<-sigs
		killEverything()
		os.Exit(130)
	}()

	root, err := os.MkdirTemp(o.dir, "coexist-bench-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "make the data root: %v\n", err)
		return 1
	}
	// Cleanup runs on return and on a panic of this goroutine; a panic
	// elsewhere kills the process, and the servers with it (Pdeathsig).
	defer func() {
		if p := recover(); p != nil {
			stopEverything()
			panic(p)
		}
		stopEverything()
		if o.keepDirs || code != 0 {
			fmt.Printf("data dirs and logs kept in %s\n", root)
		} else {
			os.RemoveAll(root)
		}
	}()

	printMachine(o, root)
	rep := &report{}
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "registry benchmark failed: %v\n", err)
		if len(rep.coexistLogs) > 0 {
			fmt.Fprintln(os.Stderr, "coexist server logs (warnings and errors):")
			for _, l := range rep.coexistLogs {
				fmt.Fprintln(os.Stderr, "  "+l)
			}
		}
		return 1
	}
	if len(o.writers) > 0 {
		if err := runWritePhases(ctx, o, root, rep); err != nil {
			return fail(err)
		}
	}
	if o.watchers > 0 {
		if slices.Contains(o.systems, "coexist") {
			modes := []bool{true}
			if o.coexistDefault {
				modes = append(modes, false)
			}
			for _, stale := range modes {
				if err := runCoexistFanout(ctx, o, root, stale, rep); err != nil {
					return fail(err)
				}
			}
		}
		if slices.Contains(o.systems, "etcd") {
			if err := runEtcdFanout(ctx, o, root, rep); err != nil {
				return fail(err)
			}
		}
	}
	ok := rep.print(o)
	if o.check && !ok {
		return 1
	}
	return 0
}

// writersClient is the one http.Client every write goes through.
func writersClient() *http.Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        512,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{Transport: tr}
}

// watchersClient keeps one connection per watcher alive between calls.
func watchersClient(n int) *http.Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        n + 64,
		MaxIdleConnsPerHost: n + 64,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{Transport: tr}
}

// runWritePhases starts one fresh cluster of each system and runs every
// write phase on both, alternating which goes first (ABBA) so that a drift
// in the machine's background load does not favour one system.
func runWritePhases(ctx context.Context, o options, root string, rep *report) error {
	hc := writersClient()
	defer hc.CloseIdleConnections()
	var systems []writer
	var all []*proc
	defer func() { stopAll(all, 10*time.Second) }()
	if slices.Contains(o.systems, "coexist") {
		step("writes: starting 3 coexist servers")
		c, err := startCoexist(ctx, o.coexistBin, filepath.Join(root, "writes"), hc)
		if err != nil {
			return err
		}
		all = append(all, c.procs...)
		defer func() { rep.coexistLogs = append(rep.coexistLogs, scanLogs(c.procs)...) }()
		step("writes: coexist ready, %s", c.describe())
		systems = append(systems, c)
	}
	if slices.Contains(o.systems, "etcd") {
		step("writes: starting 3 etcd members")
		e, err := startEtcd(ctx, o.etcdBin, filepath.Join(root, "writes"), hc)
		if err != nil {
			return err
		}
		all = append(all, e.procs...)
		step("writes: etcd ready, %s", e.describe())
		systems = append(systems, e)
	}
	turn := 0
	for _, n := range o.writers {
		for rep_ := 0; rep_ < o.repeat; rep_++ {
			order := slices.Clone(systems)
			if turn%2 == 1 {
				slices.Reverse(order)
			}
			turn++
			for _, sys := range order {
				step("writes: %s, %d writer(s) for %v (+%v warm-up)", sys.name(), n, o.duration, o.warmup)
				res, err := runWrites(ctx, sys, fmt.Sprintf("w%d-r%d", n, rep_), n, o.warmup, o.duration)
				if err != nil {
					return err
				}
				rep.addWrites(res)
				if err := checkAlive(all); err != nil {
					return err
				}
			}
		}
	}
	step("writes: stopping")
	return nil
}

// runCoexistFanout measures one fan-out mode on a fresh coexist cluster, so
// that neither the write phases nor another mode leave it larger or busier.
func runCoexistFanout(ctx context.Context, o options, root string, stale bool, rep *report) error {
	hc := writersClient()
	defer hc.CloseIdleConnections()
	mode, dir := "?stale, spread over 3 servers", "fanout-stale"
	if !stale {
		mode, dir = "default reads, all on the leader", "fanout-default"
	}
	step("fan-out: starting 3 coexist servers")
	c, err := startCoexist(ctx, o.coexistBin, filepath.Join(root, dir), hc)
	if err != nil {
		return err
	}
	defer func() {
		c.stop()
		rep.coexistLogs = append(rep.coexistLogs, scanLogs(c.procs)...)
	}()
	step("fan-out: coexist ready, %s; %d watchers (%s), %d rounds", c.describe(), o.watchers, mode, o.fanoutRounds)
	wc := watchersClient(o.watchers)
	defer wc.CloseIdleConnections()
	f := newFanout(o.watchers)
	w, err := c.StartWatchers(ctx, wc, o.watchers, o.fanoutPath, stale, f.observe)
	if err != nil {
		return err
	}
	time.Sleep(time.Second) // every watcher's blocking query is in
	res, err := runFanout(ctx, c, f, o.watchers, 3, o.fanoutRounds, o.fanoutGap, o.fanoutTimeout, 0)
	w.stop()
	if err != nil {
		return err
	}
	res.mode = mode
	res.notes = append(res.notes, fmt.Sprintf("GET %s?index=N&wait=30s; last answer %d bytes, read but not decoded; %d answers, %d watcher errors (first: %s)",
		o.fanoutPath, w.lastBytes.Load(), w.answers.Load(), w.errs.Load(), w.firstError()))
	rep.fanouts = append(rep.fanouts, res)
	step("fan-out: coexist stopping")
	return checkAlive(c.procs)
}

// runEtcdFanout measures the fan-out on a fresh etcd cluster.
func runEtcdFanout(ctx context.Context, o options, root string, rep *report) error {
	hc := writersClient()
	defer hc.CloseIdleConnections()
	mode := "watches spread over 3 members"
	step("fan-out: starting 3 etcd members")
	c, err := startEtcd(ctx, o.etcdBin, filepath.Join(root, "fanout"), hc)
	if err != nil {
		return err
	}
	defer c.stop()
	step("fan-out: etcd ready, %s; %d watches (%s), %d rounds", c.describe(), o.watchers, mode, o.fanoutRounds)
	wc := watchersClient(o.watchers)
	defer wc.CloseIdleConnections()
	f := newFanout(o.watchers)
	w, err := c.StartWatchers(ctx, wc, o.watchers, "/bench/services/", f.observe)
	if err != nil {
		return err
	}
	time.Sleep(time.Second)
	res, err := runFanout(ctx, c, f, o.watchers, 3, o.fanoutRounds, o.fanoutGap, o.fanoutTimeout, 0)
	w.stop()
	if err != nil {
		return err
	}
	res.mode = mode
	res.notes = append(res.notes, fmt.Sprintf("POST /v3/watch (gateway), one stream and connection per watch, prefix /bench/services/; %d events, %d watch errors (first: %s), %d reconnects",
		w.events.Load(), w.errs.Load(), w.firstError(), w.reconnects.Load()))
	rep.fanouts = append(rep.fanouts, res)
	step("fan-out: etcd stopping")
	return checkAlive(c.procs)
}

func checkAlive(ps []*proc) error {
	for _, p := range ps {
		if !p.alive() {
			return p.exitError()
		}
	}
	return nil
}

func step(format string, args ...any) {
	fmt.Printf("%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func printMachine(o options, root string) {
	fmt.Println("registry benchmark: coexist (3 servers) vs etcd (3 members), loopback, fsync on")
	cpu := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				if _, v, ok := strings.Cut(l, ":"); ok {
					cpu = strings.TrimSpace(v)
				}
				break
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	fmt.Printf("  machine: %d CPUs (%s), linux %s, GOMAXPROCS %d, load average %s\n", runtime.NumCPU(), cpu, strings.TrimSpace(string(kernel)), runtime.GOMAXPROCS(0), loadAvg())
	if l, err := strconv.ParseFloat(strings.Fields(loadAvg() + " 0")[0], 64); err == nil && l > 0.5*float64(runtime.NumCPU()) {
		fmt.Println("  WARNING: other processes are busy on this machine: the figures will be noisy (--repeat interleaves more runs)")
	}
	fmt.Printf("  go:      %s (this program; `go version`: %s)\n", runtime.Version(), cmdLine("go", "version"))
	if slices.Contains(o.systems, "coexist") {
		fmt.Printf("  coexist: %s\n", o.coexistBin)
	}
	if slices.Contains(o.systems, "etcd") {
		fmt.Printf("  etcd:    %s (%s)\n", cmdLine(o.etcdBin, "--version"), o.etcdBin)
	}
	fs, fsyncP50 := diskInfo(root)
	fmt.Printf("  data:    %s (%s; fsync of a 4 KiB append: p50 %s)\n", root, fs, fsyncP50)
	if fs == "tmpfs" {
		fmt.Println("  WARNING: the data dirs are on tmpfs, where fsync costs nothing; use --dir on a disk")
	}
	fmt.Printf("  order:   write phases on one fresh cluster per system, alternating which system goes first; then each fan-out mode on a fresh cluster\n")
	fmt.Printf("  load:    writes %v for %v each (+%v warm-up) x%d; fan-out %d watchers, %d rounds (+3 warm-up), %v apart, each a new %s\n",
		o.writers, o.duration, o.warmup, o.repeat, o.watchers, o.fanoutRounds, o.fanoutGap, strings.TrimSuffix(fanoutKeys, "s"))
}

// loadAvg answers the 1, 5 and 15 minute load averages.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// cmdLine runs a command and answers the first line of its output.
func cmdLine(name string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil && len(out) == 0 {
		return "unknown: " + err.Error()
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

// diskInfo names the file system of dir and times fsync on it.
func diskInfo(dir string) (string, string) {
	fs := "?"
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) == nil {
		switch uint64(st.Type) {
		case 0xEF53:
			fs = "ext4"
		case 0x58465342:
			fs = "xfs"
		case 0x9123683E:
			fs = "btrfs"
		case 0x01021994:
			fs = "tmpfs"
		case 0x794c7630:
			fs = "overlayfs"
		default:
			fs = fmt.Sprintf("fs type 0x%x", uint64(st.Type))
		}
	}
	f, err := os.CreateTemp(dir, "fsync-")
	if err != nil {
		return fs, "?"
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	var ds []time.Duration
	for i := 0; i < 30; i++ {
		t := time.Now()
		if _, err := f.Write(buf); err != nil {
			return fs, "?"
		}
		if err := f.Sync(); err != nil {
			return fs, "?"
		}
		ds = append(ds, time.Since(t))
	}
	slices.Sort(ds)
	return fs, fmtDur(percentile(ds, 0.5))
}
