// Command gateway benchmarks a node's gateway (`coexist agent --dev`)
// against nginx as a reverse proxy in front of the same greeter container,
// with the same load, on this machine (issue 3):
//
//   - throughput, closed loop: wrk (and a Go generator as a second opinion)
//     against the greeter directly, nginx with worker_processes 1, nginx with
//     worker_processes auto, and the gateway; the goal is gateway/nginx >= 1.0;
//   - added latency, open loop at half the direct capacity: p50 and p99 of
//     each, less the direct call's; the goal is gateway p50 - direct p50 <=
//     100µs;
//   - deploy latency: from the PUT of a new container (of a new, higher
//     version of greeter) to the first call the gateway has it serve, against
//     the floor of starting the greeter binary and seeing it answer; the goal
//     is a median within 50ms of the floor's.
//
// Run it with:
//
//	go build -o bin/coexist ./cmd/coexist && go build -o bin/greeter ./examples/greeter
//	go run ./bench/gateway --coexist-bin bin/coexist --greeter-bin bin/greeter
//
// Everything runs on loopback and shares the machine's CPUs with the load
// generator: the report prints the load average, and the CPU time each
// process under test spent per call. nginx runs as the current user, with
// its pid file, error log and temp paths in a temp dir and no access log,
// keep-alive connections to the greeter, and the gateway's headers: the
// greeter receives the same call from both (the caller's Host,
// X-Forwarded-For, -Host and -Proto) and the caller the same answer
// (Coexist-Served-By).
// The gateway is one Go process that may use every core; nginx is measured
// both with one worker and with one worker per core.
//
// With --cpuprofile FILE it instead serves gateway.Gateway in this process in
// front of one greeter, loads it with wrk, and writes and summarises the
// gateway's CPU profile.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

type options struct {
	coexistBin, greeterBin, nginxBin, wrkBin string
	dir                                      string
	keepDirs                                 bool
	duration, warmup                         time.Duration
	connections, threads                     int
	latencyConns                             int
	rate                                     float64
	lightRate                                float64
	repeat                                   int
	deployRounds                             int
	portRange                                string
	phases                                   map[string]bool
	timeout                                  time.Duration
	check                                    bool
	goLoad                                   bool
	cpuProfile                               string
	agentEnv                                 envFlag
}

// envFlag is a repeatable KEY=VALUE flag.
type envFlag []string

func (e *envFlag) String() string { return strings.Join(*e, " ") }
func (e *envFlag) Set(s string) error {
	if k, _, ok := strings.Cut(s, "="); !ok || k == "" {
		return fmt.Errorf("%q: want KEY=VALUE", s)
	}
	*e = append(*e, s)
	return nil
}

func main() {
	os.Exit(run())
}

func run() (code int) {
	var o options
	var phases string
	flag.StringVar(&o.coexistBin, "coexist-bin", "bin/coexist", "path of the coexist binary (go build -o bin/coexist ./cmd/coexist)")
	flag.StringVar(&o.greeterBin, "greeter-bin", "bin/greeter", "path of the greeter binary (go build -o bin/greeter ./examples/greeter)")
	flag.StringVar(&o.nginxBin, "nginx-bin", "nginx", "nginx binary (Debian: apt-get install nginx)")
	flag.StringVar(&o.wrkBin, "wrk-bin", "wrk", "wrk binary (Debian: apt-get install wrk); without it, only the Go load generator runs")
	flag.StringVar(&o.dir, "dir", os.TempDir(), "directory under which the data dirs, configs and logs are made")
	flag.BoolVar(&o.keepDirs, "keep-dirs", false, "keep the data dirs, configs and logs")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured duration of each load run")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured warm-up before each load run")
	flag.IntVar(&o.connections, "connections", 64, "connections of the closed-loop runs (wrk -c, and the Go generator)")
	flag.IntVar(&o.threads, "threads", 2, "wrk threads (wrk -t)")
	flag.IntVar(&o.latencyConns, "latency-connections", 64, "connections of the open-loop (fixed-rate) runs")
	flag.Float64Var(&o.rate, "rate", 0, "calls/s of the open-loop runs; 0: half the direct capacity measured by the throughput phase")
	flag.Float64Var(&o.lightRate, "light-rate", 1000, "also measure the added latency at this light rate, calls/s (0: not)")
	flag.IntVar(&o.repeat, "repeat", 1, "run each throughput and latency run this many times per target, alternating the order of the targets")
	flag.IntVar(&o.deployRounds, "deploy-rounds", 10, "measured deploy rounds (after one warm-up round)")
	flag.StringVar(&o.portRange, "port-range", "21960-21999", "container port range given to the agent")
	flag.StringVar(&phases, "phases", "throughput,latency,deploy", "phases to run")
	flag.DurationVar(&o.timeout, "timeout", 20*time.Minute, "give up on the whole run after this long")
	flag.BoolVar(&o.check, "check", false, "exit 1 when a goal is missed")
	flag.BoolVar(&o.goLoad, "go-load", true, "also run the Go closed-loop generator in the throughput phase (always, when wrk is missing)")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "instead of the benchmark: serve the gateway (gateway.Gateway) in this process in front of one greeter, load it with wrk, and write its CPU profile to this file")
	flag.Var(&o.agentEnv, "agent-env", "extra environment of the coexist agent, KEY=VALUE (repeatable), e.g. GOGC=400 or GOMAXPROCS=1 for experiments")
	flag.Parse()
	o.phases = map[string]bool{}
	for _, p := range strings.Split(phases, ",") {
		p = strings.TrimSpace(p)
		switch p {
		case "":
		case "throughput", "latency", "deploy":
			o.phases[p] = true
		default:
			fmt.Fprintf(os.Stderr, "--phases: unknown phase %q (throughput, latency, deploy)\n", p)
			return 2
		}
	}
	if o.repeat < 1 || o.connections < 1 || o.threads < 1 || o.latencyConns < 1 || o.deployRounds < 1 {
		fmt.Fprintln(os.Stderr, "--repeat, --connections, --threads, --latency-connections and --deploy-rounds must be at least 1")
		return 2
	}
	if o.threads > o.connections {
		o.threads = o.connections
	}

	// Binaries first: a clear error before anything starts.
	var err error
	if o.cpuProfile == "" {
		if o.coexistBin, err = findBin(o.coexistBin, "coexist binary", "build it with `go build -o bin/coexist ./cmd/coexist` (or `make build`)"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	if o.greeterBin, err = findBin(o.greeterBin, "greeter binary", "build it with `go build -o bin/greeter ./examples/greeter` (or `make build`)"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	needNginx := o.cpuProfile == "" && (o.phases["throughput"] || o.phases["latency"])
	if needNginx {
		if o.nginxBin, err = findBin(o.nginxBin, "nginx", "it is the gateway's performance peer: install it with `apt-get install nginx` (Debian; `make bench-gateway` does)"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	if p, err := findBin(o.wrkBin, "wrk", ""); err == nil {
		o.wrkBin = p
	} else {
		o.wrkBin = ""
		if o.cpuProfile != "" {
			fmt.Fprintln(os.Stderr, "wrk not found: --cpuprofile needs it (apt-get install wrk)")
			return 1
		}
		if o.phases["throughput"] {
			fmt.Fprintln(os.Stderr, "WARNING: wrk not found (install it with `apt-get install wrk`; `make bench-gateway` does): the throughput phase uses the Go load generator only")
			o.goLoad = true
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	var interrupted atomic.Bool
	go func() {
		s := <-sigs
		interrupted.Store(true)
		fmt.Fprintf(os.Stderr, "\n%v: stopping (again to kill everything at once)\n", s)
		cancel()
		<-sigs
		killEverything()
		os.Exit(130)
	}()

	root, err := os.MkdirTemp(o.dir, "coexist-bench-gateway-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "make the temp dir: %v\n", err)
		return 1
	}
	// Cleanup runs on return and on a panic of this goroutine; a panic
	// elsewhere kills the process, and the children with it (Pdeathsig),
	// though not the agent's containers (stopped by the agent on SIGTERM,
	// killed by killOrphans otherwise).
	defer func() {
		if p := recover(); p != nil {
			stopEverything()
			panic(p)
		}
		stopEverything()
		if o.keepDirs || code != 0 {
			fmt.Printf("data dirs, configs and logs kept in %s\n", root)
		} else {
			os.RemoveAll(root)
		}
	}()

	if o.cpuProfile != "" {
		if err := runProfile(ctx, &o, root); err != nil {
			fmt.Fprintf(os.Stderr, "profile run failed: %v\n", err)
			return 1
		}
		return 0
	}

	rep := &report{loadStart: loadAvg(), busyStart: cpuBusy(time.Second)}
	printMachine(&o, rep)
	var ag *agent
	fail := func(err error) int {
		switch {
		case interrupted.Load():
			fmt.Fprintln(os.Stderr, "gateway benchmark interrupted")
			return 130
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
			fmt.Fprintf(os.Stderr, "gateway benchmark gave up after --timeout %v: %v\n", o.timeout, err)
		default:
			fmt.Fprintf(os.Stderr, "gateway benchmark failed: %v\n", err)
		}
		if ag != nil {
			if ps := ag.logProblems(15); len(ps) > 0 {
				fmt.Fprintf(os.Stderr, "agent log (%s), warnings and errors:\n", ag.p.logPath)
				for _, l := range ps {
					fmt.Fprintln(os.Stderr, "  "+l)
				}
			}
		}
		return 1
	}

	step("starting coexist agent --dev")
	ag, err = startAgent(ctx, &o, root)
	if err != nil {
		return fail(err)
	}
	step("agent ready: registry %s, gateway %s; declaring %s@%s (clients %q) and container %s", ag.registry, ag.gateway, serviceName, baseVersion, clientRange, baseID)
	if err := ag.declareVersion(ctx, baseVersion); err != nil {
		return fail(err)
	}
	if err := ag.declareContainer(ctx, baseID, baseVersion, o.greeterBin); err != nil {
		return fail(err)
	}
	base, err := ag.waitRunning(ctx, baseID, 60*time.Second)
	if err != nil {
		return fail(err)
	}
	endpoint := base.Status.Endpoint
	greeterPID := base.Status.PID
	rep.endpoint, rep.greeterPID = endpoint, greeterPID
	servedBy := serviceName + "@" + baseVersion + " " + baseID
	step("container %s running: pid %d, endpoint %s", baseID, greeterPID, endpoint)

	targets := []*target{{name: "direct", addr: endpoint}}
	if needNginx {
		for _, w := range []string{"1", "auto"} {
			n, err := startNginx(ctx, &o, root, w, endpoint, servedBy)
			if err != nil {
				return fail(err)
			}
			name := "nginx, 1 worker"
			if w == "auto" {
				name = fmt.Sprintf("nginx, auto (%d)", n.workerCount())
			}
			targets = append(targets, &target{name: name, addr: n.addr, proxyPgid: n.p.pid(), nginx: n, servedBy: servedBy})
			step("%s listening on %s (%d worker process(es); config %s)", name, n.addr, n.workerCount(), filepath.Join(n.dir, "nginx.conf"))
		}
	}
	targets = append(targets, &target{name: "coexist gateway", addr: ag.gateway, proxyPID: ag.p.pid(), servedBy: servedBy, gateway: true})
	rep.targets = targets

	// What the agent costs when no call comes: its registry, watches,
	// heartbeats and reconcile ticks. The gateway's CPU per call includes it.
	{
		t0 := cpuTicks([]int{ag.p.pid()}, nil)
		w0 := time.Now()
		time.Sleep(3 * time.Second)
		rep.agentIdle = float64(ticksToDuration(cpuTicks([]int{ag.p.pid()}, nil)-t0)) / float64(time.Since(w0))
		step("agent idle CPU: %.1f%% of one CPU (3s, no calls)", 100*rep.agentIdle)
	}

	// Every target answers, and the gateway through the right container.
	for _, t := range targets {
		if err := checkTarget(ctx, t); err != nil {
			return fail(err)
		}
	}

	if o.phases["throughput"] {
		if err := runThroughput(ctx, &o, targets, greeterPID, rep); err != nil {
			return fail(err)
		}
	}
	if o.phases["latency"] {
		rate := o.rate
		if rate <= 0 {
			c := rep.directCapacity()
			if c <= 0 {
				step("latency: measuring the direct capacity (wrk)")
				r, err := measureCapacity(ctx, &o, targets[0])
				if err != nil {
					return fail(err)
				}
				c = r
			}
			rep.directCap = c
			rate = c / 2
		}
		rates := []float64{rate}
		if o.lightRate > 0 && o.lightRate < rate {
			rates = append(rates, o.lightRate)
		}
		for _, r := range rates {
			if err := runLatency(ctx, &o, targets, r, greeterPID, rep); err != nil {
				return fail(err)
			}
		}
	}
	for _, t := range targets {
		if t.nginx != nil {
			t.nginx.p.stop(5 * time.Second)
		}
	}
	if o.phases["deploy"] {
		dir := filepath.Join(root, "floor")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fail(err)
		}
		for i := 0; i <= o.deployRounds; i++ {
			r, err := runDeployRound(ctx, &o, ag, dir, i, i%2 == 0)
			if err != nil {
				return fail(err)
			}
			r.warmup = i == 0
			what := "deploy"
			if r.warmup {
				what = "deploy (warm-up)"
			}
			step("%s %s: first call served %s after the PUT (container started at +%s; %d polls, %d served by others, %d bad); floor %s (%d polls)",
				what, r.id, fmtDur(r.total), fmtDur(r.exec), r.polls, r.otherCalls, r.badCalls, fmtDur(r.floor), r.floorPolls)
			rep.deploys = append(rep.deploys, r)
		}
	}
	if !ag.p.alive() {
		return fail(ag.p.exitError())
	}
	rep.agentLog = ag.logProblems(10)
	rep.loadEnd = loadAvg()
	rep.busyEnd = cpuBusy(time.Second)
	ok := rep.print(&o)
	if o.check && !ok {
		return 1
	}
	return 0
}

// target is one thing the load generators call.
type target struct {
	name      string
	addr      string
	proxyPID  int // the agent
	proxyPgid int // nginx's process group
	servedBy  string
	gateway   bool
	nginx     *nginxProxy
}

func (t *target) proxyTicks() int64 {
	var pids, pgids []int
	if t.proxyPID > 0 {
		pids = append(pids, t.proxyPID)
	}
	if t.proxyPgid > 0 {
		pgids = append(pgids, t.proxyPgid)
	}
	if len(pids)+len(pgids) == 0 {
		return 0
	}
	return cpuTicks(pids, pgids)
}

func checkTarget(ctx context.Context, t *target) error {
	rc := newRawConn(t.addr)
	defer rc.close()
	var last string
	for i := 0; i < 100 && ctx.Err() == nil; i++ {
		a, err := rc.do(time.Now().Add(5*time.Second), true)
		switch {
		case err != nil:
			last = err.Error()
		case a.status != 200:
			last = fmt.Sprintf("status %d", a.status)
		case t.servedBy != "" && a.servedBy != t.servedBy:
			last = fmt.Sprintf("served by %q, want %q", a.servedBy, t.servedBy)
		default:
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s (%s): GET %s does not answer 200: %s", t.name, t.addr, callPath, last)
}

func findBin(name, what, hint string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil && !strings.Contains(name, "/") {
		// Relative to the working directory, then the sbin directories a
		// non-root PATH may lack (Debian's nginx is /usr/sbin/nginx).
		for _, dir := range []string{".", "/usr/sbin", "/usr/local/sbin"} {
			if q, e := exec.LookPath(dir + "/" + name); e == nil {
				p, err = q, nil
				break
			}
		}
	}
	if err != nil {
		if hint == "" {
			return "", fmt.Errorf("%s %q not found", what, name)
		}
		return "", fmt.Errorf("%s %q not found: %s", what, name, hint)
	}
	return filepath.Abs(p)
}

func step(format string, args ...any) {
	fmt.Printf("%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
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

func load1() float64 {
	f, err := strconv.ParseFloat(strings.Fields(loadAvg() + " 0")[0], 64)
	if err != nil {
		return 0
	}
	return f
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

func printMachine(o *options, rep *report) {
	fmt.Println("gateway benchmark: coexist gateway vs nginx reverse proxy, one greeter container, loopback")
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
	rep.machine = fmt.Sprintf("%d CPUs (nproc %s; %s), linux %s", runtime.NumCPU(), cmdLine("nproc"), cpu, strings.TrimSpace(string(kernel)))
	fmt.Printf("  machine: %s\n", rep.machine)
	fmt.Printf("  load:    load average %s at the start; CPUs %.0f%% busy over 1s before anything started\n", rep.loadStart, 100*rep.busyStart)
	if load1() > 0.5*float64(runtime.NumCPU()) {
		fmt.Println("  WARNING: other processes are busy on this machine: the figures will be noisy (--repeat runs more, alternating)")
	}
	fmt.Printf("  go:      %s (this program, GOMAXPROCS %d)\n", runtime.Version(), runtime.GOMAXPROCS(0))
	fmt.Printf("  coexist: %s; greeter: %s\n", o.coexistBin, o.greeterBin)
	if len(o.agentEnv) > 0 {
		fmt.Printf("  agent environment: %s\n", o.agentEnv.String())
	}
	if o.nginxBin != "" && (o.phases["throughput"] || o.phases["latency"]) {
		fmt.Printf("  nginx:   %s (%s)\n", cmdLine(o.nginxBin, "-v"), o.nginxBin)
	}
	if o.wrkBin != "" {
		fmt.Printf("  wrk:     %s (%s)\n", strings.TrimSpace(strings.SplitN(cmdLine(o.wrkBin, "--version"), "Copyright", 2)[0]), o.wrkBin)
	}
	fmt.Printf("  load generators: wrk -t%d -c%d (closed loop) and a Go generator (raw HTTP/1.1 keep-alive, closed loop at %d connections, open loop at %d); %v each after %v warm-up, x%d\n",
		o.threads, o.connections, o.connections, o.latencyConns, o.duration, o.warmup, o.repeat)
	fmt.Printf("  request: GET %s with Coexist-Client: %s, Coexist-Client-Version: %s (the same to every target)\n", callPath, clientName, clientVersion)
}

// rusageSelf is this process's CPU time so far.
func rusageSelf() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measureCapacity runs one closed-loop run against t and answers its calls/s.
func measureCapacity(ctx context.Context, o *options, t *target) (float64, error) {
	if o.wrkBin != "" {
		r, err := runWrk(ctx, o.wrkBin, t.addr, o.threads, o.connections, o.duration)
		if err != nil {
			return 0, err
		}
		return r.perSec(), nil
	}
	r := closedLoop(ctx, t.addr, o.connections, o.warmup, o.duration, t.servedBy)
	if r.calls == 0 {
		return 0, errors.New("direct: no call answered: " + r.firstErr)
	}
	return r.perSec(), nil
}

// cpuBusy samples /proc/stat over d and answers the share of the machine's
// CPU time spent busy: what else runs on this shared machine.
func cpuBusy(d time.Duration) float64 {
	read := func() (busy, total int64) {
		b, err := os.ReadFile("/proc/stat")
		if err != nil {
			return 0, 0
		}
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line)
		for i, x := range f[1:] {
			n, _ := strconv.ParseInt(x, 10, 64)
			total += n
			if i != 3 && i != 4 { // idle, iowait
				busy += n
			}
		}
		return busy, total
	}
	b0, t0 := read()
	time.Sleep(d)
	b1, t1 := read()
	if t1 <= t0 {
		return 0
	}
	return float64(b1-b0) / float64(t1-t0)
}
