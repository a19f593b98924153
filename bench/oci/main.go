// Command oci benchmarks the agent's oci driver (issue 14) on this machine:
//
//   - image unpack: greeter's image from its OCI layout into a fresh image
//     cache (first use: resolve, verify every digest, flatten the layers),
//     and again from the cache (cached: resolve and find the digest);
//   - declare to first call: from the PUT of a new oci container (of a new,
//     higher version of greeter, its image already cached) to the first call
//     the gateway has it serve, against the floor of `runc run` of the same
//     bundle (the config.json the agent wrote, on another port) to its first
//     /healthz answer; the goal is a median within 50 ms of the floor's;
//   - the agent's RSS with 20 oci containers running; the goal is at most
//     30 MB. The agent runs against a separate `coexist server`, so that
//     the registry's memory is not counted.
//
// Run it (as root, with runc installed) with:
//
//	make build && go run ./bench/oci --coexist-bin bin/coexist --images bin/images/greeter
//
// With -v it prints each round (its declare's wall clock too); with
// --agent-log-level debug --keep-dirs the agent's log (under --dir) times
// each start: the image, runc delete, the bundle, runc's pid, and the first
// health pass.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/bench/internal/benchutil"
	"github.com/coexist-dev/coexist/node/image"
)

const (
	nodeID     = "bench-oci"
	service    = "greeter"
	token      = "bench-oci-management-token-0123456789"
	deployGoal = 50 * time.Millisecond
	rssGoal    = 30 << 20
	pollEvery  = time.Millisecond
)

type options struct {
	coexistBin, images, tag, portRange, dir, agentLog string
	rounds, unpackRounds, containers                  int
	check, keep, verbose                              bool
	timeout                                           time.Duration
}

func main() { os.Exit(run()) }

func run() int {
	var o options
	flag.StringVar(&o.coexistBin, "coexist-bin", "bin/coexist", "the coexist binary (make build)")
	flag.StringVar(&o.images, "images", "bin/images/greeter", "the greeter image layout (make build packs it)")
	flag.StringVar(&o.tag, "tag", "1.1.0", "the image's tag in the layout")
	flag.StringVar(&o.portRange, "port-range", "21700-21799", "container port range given to the agent (oci takes the upper half)")
	flag.StringVar(&o.dir, "dir", os.TempDir(), "directory under which data dirs and logs are made")
	flag.StringVar(&o.agentLog, "agent-log-level", "info", "the agent's --log-level (debug logs each start's timings)")
	flag.IntVar(&o.rounds, "rounds", 10, "measured deploy rounds (after one warm-up round)")
	flag.IntVar(&o.unpackRounds, "unpack-rounds", 5, "image unpacks into a fresh cache")
	flag.IntVar(&o.containers, "containers", 20, "oci containers running when the agent's RSS is read")
	flag.BoolVar(&o.check, "check", false, "exit 1 when a goal is missed")
	flag.BoolVar(&o.keep, "keep-dirs", false, "keep the data dirs and logs")
	flag.BoolVar(&o.verbose, "v", false, "print each deploy round's times (and its declare's wall clock, to read beside the agent's log)")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up after this long")
	flag.Parse()
	if o.rounds < 1 || o.unpackRounds < 1 || o.containers < 1 {
		fmt.Fprintln(os.Stderr, "--rounds, --unpack-rounds and --containers must be at least 1")
		return 2
	}
	runc, err := exec.LookPath("runc")
	if err != nil || os.Geteuid() != 0 {
		fmt.Println("SKIP: the oci benchmark needs runc (make runc) and root")
		return 0
	}
	for _, p := range []*string{&o.coexistBin, &o.images} {
		if *p, err = filepath.Abs(*p); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
	}
	if _, err := os.Stat(filepath.Join(o.images, "index.json")); err != nil {
		fmt.Fprintf(os.Stderr, "no image layout at %s (make build packs it): %v\n", o.images, err)
		return 2
	}
	dir, err := os.MkdirTemp(o.dir, "coexist-bench-oci-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	b := &bench{o: o, dir: dir, runc: runc}
	defer b.stopAll()
	rep, err := b.run(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/oci:", err)
		for _, p := range b.procs {
			fmt.Fprintf(os.Stderr, "--- %s (%s):\n%s\n", p.name, p.log, benchutil.Tail(p.log, 20))
		}
		return 1
	}
	rep.print(os.Stdout, runcVersion(runc))
	if o.check && !rep.ok() {
		return 1
	}
	return 0
}

type bench struct {
	o      options
	dir    string
	runc   string
	procs  []*proc
	api    *api.Client
	agent  *proc
	gw     string
	agentD string // the agent's data dir
	// declaredAt is the wall clock of the last round's declare.
	declaredAt time.Time
}

type proc struct {
	name, log string
	cmd       *exec.Cmd
	done      chan struct{}
}

func (b *bench) start(name string, env []string, args ...string) (*proc, error) {
	log := filepath.Join(b.dir, name+".log")
	f, err := os.Create(log)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(b.o.coexistBin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, log: log, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	b.procs = append(b.procs, p)
	return p, nil
}

// stopAll stops the agent first (SIGTERM: it leaves its containers
// running), removes what is left of the benchmark's containers, then the
// server.
func (b *bench) stopAll() {
	for i := len(b.procs) - 1; i >= 0; i-- {
		p := b.procs[i]
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		if p == b.agent {
			root := filepath.Join(b.agentD, "oci", "runc")
			out, _ := exec.Command(b.runc, "--root", root, "list", "-q").Output()
			for _, id := range strings.Fields(string(out)) {
				_ = exec.Command(b.runc, "--root", root, "delete", "--force", id).Run()
			}
		}
	}
	b.procs = nil
}

type report struct {
	imageBytes           int64
	unpackFirst, cached  []time.Duration
	deploy, floor, start []time.Duration
	containers           int
	rssIdle, rssLoaded   int64
	serverRSS            int64
}

func (b *bench) run(ctx context.Context) (*report, error) {
	rep := &report{containers: b.o.containers}
	ref := "oci:" + b.o.images + ":" + b.o.tag
	if err := b.unpack(ctx, ref, rep); err != nil {
		return nil, err
	}
	if err := b.startFleet(ctx); err != nil {
		return nil, err
	}
	if rep.rssIdle = rss(b.agent.cmd.Process.Pid); rep.rssIdle == 0 {
		return nil, errors.New("cannot read the agent's RSS")
	}
	for n := 0; n <= b.o.rounds; n++ {
		d, started, floor, err := b.deployRound(ctx, ref, n, n%2 == 1)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			continue // warm-up: the agent unpacks the image
		}
		rep.deploy, rep.start, rep.floor = append(rep.deploy, d), append(rep.start, started), append(rep.floor, floor)
		if b.o.verbose {
			fmt.Printf("round %d: declared at %s: first call %s, started %s; floor %s\n",
				n, b.declaredAt.UTC().Format("15:04:05.000"), ms(d), ms(started), ms(floor))
		}
	}
	if err := b.fill(ctx, ref, rep); err != nil {
		return nil, err
	}
	return rep, nil
}

// unpack measures the image's unpack into a fresh cache, then from it.
func (b *bench) unpack(ctx context.Context, ref string, rep *report) error {
	for i := range b.o.unpackRounds {
		c, err := image.New(image.Config{Dir: filepath.Join(b.dir, fmt.Sprintf("cache-%d", i))})
		if err != nil {
			return err
		}
		t0 := time.Now()
		if _, err := c.Unpack(ctx, ref); err != nil {
			return err
		}
		rep.unpackFirst = append(rep.unpackFirst, time.Since(t0))
		t0 = time.Now()
		if _, err := c.Unpack(ctx, ref); err != nil {
			return err
		}
		rep.cached = append(rep.cached, time.Since(t0))
		if i == 0 {
			img, err := c.Resolve(ctx, ref)
			if err != nil {
				return err
			}
			layers, _ := img.Layers()
			for _, l := range layers {
				if n, err := l.Size(); err == nil {
					rep.imageBytes += n
				}
			}
		}
		_ = os.RemoveAll(filepath.Join(b.dir, fmt.Sprintf("cache-%d", i)))
	}
	return nil
}

// startFleet starts `coexist server` and `coexist agent` against it.
func (b *bench) startFleet(ctx context.Context) error {
	ports, err := benchutil.FreePorts(3)
	if err != nil {
		return err
	}
	reg := fmt.Sprintf("127.0.0.1:%d", ports[0])
	b.gw = fmt.Sprintf("127.0.0.1:%d", ports[2])
	if _, err := b.start("server", []string{"COEXIST_MANAGEMENT_TOKEN=" + token}, "server", "--node-id", "s1",
		"--http-addr", reg, "--raft-addr", fmt.Sprintf("127.0.0.1:%d", ports[1]), "--bootstrap",
		"--data-dir", filepath.Join(b.dir, "server"), "--log-level", "warn"); err != nil {
		return err
	}
	if b.api, err = api.NewClient(&api.Config{Address: "http://" + reg, Token: token}); err != nil {
		return err
	}
	if err := waitFor(ctx, 30*time.Second, "the server to lead", func() error {
		_, _, err := b.api.Nodes().List(ctx, nil)
		return err
	}); err != nil {
		return err
	}
	b.agentD = filepath.Join(b.dir, "agent")
	if b.agent, err = b.start("agent", []string{"COEXIST_TOKEN=" + token}, "agent", "--node-id", nodeID,
		"--registry", "http://"+reg, "--gateway-addr", b.gw, "--data-dir", b.agentD,
		"--port-range", b.o.portRange, "--log-level", b.o.agentLog); err != nil {
		return err
	}
	return waitFor(ctx, 30*time.Second, "node "+nodeID+" ready", func() error {
		n, _, err := b.api.Nodes().Info(ctx, nodeID, nil)
		if err == nil && n.Status != api.NodeReady {
			err = fmt.Errorf("node is %s", n.Status)
		}
		return err
	})
}

// declare declares container id of greeter@ver from ref.
func (b *bench) declare(ctx context.Context, id, ver, ref string) error {
	_, _, err := b.api.Containers().Declare(ctx, id, api.ContainerRequest{
		Node: nodeID, Services: []api.ServiceRef{{Service: service, Version: ver}},
		Driver: "oci", Config: api.DriverConfig{Image: ref},
		Resources: &api.Resources{Memory: "64MiB"},
		Health:    &api.HealthCheck{HTTP: "/healthz"}, DrainTimeout: api.Duration(time.Second),
	}, &api.WriteOptions{CAS: api.CAS(0)})
	return err
}

// deployRound declares greeter 1.0.n in a new oci container and calls the
// gateway every millisecond until an answer names it; then measures the
// floor with the bundle the agent wrote (before or after, alternately), and
// removes the container.
func (b *bench) deployRound(ctx context.Context, ref string, n int, floorFirst bool) (total, started, floor time.Duration, err error) {
	id, ver := fmt.Sprintf("deploy-%d", n), fmt.Sprintf("1.0.%d", n)
	if _, _, err := b.api.Services().Declare(ctx, service, ver, api.VersionRequest{Clients: ">= 1.0"}, nil); err != nil {
		return 0, 0, 0, fmt.Errorf("declare %s@%s: %w", service, ver, err)
	}
	var bundle []byte
	if floorFirst && n > 0 { // the bundle of the round before
		if floor, err = b.floor(ctx, n); err != nil {
			return 0, 0, 0, err
		}
	}
	want := service + "@" + ver + " " + id
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	call := func() (string, int, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.gw+"/greeter/hello", nil)
		req.Header.Set(api.HeaderClientVersion, "1.0.0")
		resp, err := client.Do(req)
		if err != nil {
			return "", 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.Header.Get(api.HeaderServedBy), resp.StatusCode, nil
	}
	_, _, _ = call() // the connection is open before T0
	t0 := time.Now()
	b.declaredAt = t0
	if err := b.declare(ctx, id, ver, ref); err != nil {
		return 0, 0, 0, fmt.Errorf("declare container %s: %w", id, err)
	}
	for next := time.Now(); ; next = next.Add(pollEvery) {
		if time.Since(t0) > 30*time.Second || ctx.Err() != nil {
			return 0, 0, 0, fmt.Errorf("deploy %s: no answer served by %q within 30s", id, want)
		}
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		} else {
			next = time.Now()
		}
		if served, code, err := call(); err == nil && code == http.StatusOK && served == want {
			total = time.Since(t0)
			break
		}
	}
	// The agent reports the container's start in the background: wait for
	// the report rather than count a round without one as started at 0.
	if err := waitFor(ctx, 10*time.Second, "the start of "+id+" reported", func() error {
		ct, _, err := b.api.Containers().Info(ctx, id, nil)
		if err == nil && (ct.Status == nil || ct.Status.StartedAt == nil) {
			err = errors.New("no start time yet")
		}
		if err == nil {
			started = ct.Status.StartedAt.Sub(t0)
		}
		return err
	}); err != nil {
		return 0, 0, 0, err
	}
	if bundle, err = os.ReadFile(filepath.Join(b.agentD, "oci", "containers", id, "config.json")); err != nil {
		return 0, 0, 0, fmt.Errorf("the bundle of %s: %w", id, err)
	}
	if err := os.WriteFile(filepath.Join(b.dir, "floor.json"), bundle, 0o644); err != nil {
		return 0, 0, 0, err
	}
	if !floorFirst || n == 0 {
		if floor, err = b.floor(ctx, n); err != nil {
			return 0, 0, 0, err
		}
	}
	if _, _, err := b.api.Containers().Delete(ctx, id, nil); err != nil {
		return 0, 0, 0, err
	}
	if _, _, err := b.api.Services().Retire(ctx, service, ver, nil); err != nil {
		return 0, 0, 0, err
	}
	return total, started, floor, waitFor(ctx, 30*time.Second, "container "+id+" gone", func() error {
		if _, _, err := b.api.Containers().Info(ctx, id, nil); !api.IsNotFound(err) {
			return fmt.Errorf("still there (%v)", err)
		}
		return nil
	})
}

// floor runs `runc run` of the last bundle the agent wrote (floor.json),
// on a free port and a cgroup of its own, and calls its /healthz every
// millisecond: the time from just before the exec to the first 200.
func (b *bench) floor(ctx context.Context, n int) (time.Duration, error) {
	raw, err := os.ReadFile(filepath.Join(b.dir, "floor.json"))
	if err != nil {
		return 0, err
	}
	var s specs.Spec
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, err
	}
	ports, err := benchutil.FreePorts(1)
	if err != nil {
		return 0, err
	}
	port := strconv.Itoa(ports[0])
	for i, kv := range s.Process.Env {
		if k, _, _ := strings.Cut(kv, "="); k == "PORT" || k == "COEXIST_PORT" {
			s.Process.Env[i] = k + "=" + port
		}
	}
	id := fmt.Sprintf("bench-floor-%d-%d", os.Getpid(), n)
	s.Hostname, s.Linux.CgroupsPath = id, "coexist-bench-floor/"+id
	bundle := filepath.Join(b.dir, id)
	if err := os.MkdirAll(bundle, 0o755); err != nil {
		return 0, err
	}
	out, _ := json.Marshal(&s)
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), out, 0o644); err != nil {
		return 0, err
	}
	root := filepath.Join(b.dir, "floor-runc")
	log, err := os.Create(filepath.Join(bundle, "output"))
	if err != nil {
		return 0, err
	}
	defer log.Close()
	cmd := exec.Command(b.runc, "--root", root, "run", "--bundle", bundle, id)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Second}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("runc run: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() {
		_ = exec.Command(b.runc, "--root", root, "kill", id, "KILL").Run()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		_ = exec.Command(b.runc, "--root", root, "delete", "--force", id).Run()
	}()
	for next := t0; ; next = next.Add(pollEvery) {
		select {
		case <-exited:
			return 0, fmt.Errorf("runc run %s exited: %s", id, benchutil.Tail(log.Name(), 5))
		default:
		}
		if time.Since(t0) > 30*time.Second || ctx.Err() != nil {
			return 0, fmt.Errorf("runc run %s: no /healthz answer within 30s", id)
		}
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		} else {
			next = time.Now()
		}
		resp, err := client.Get("http://127.0.0.1:" + port + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(t0), nil
			}
		}
	}
}

// fill runs o.containers oci containers of greeter 1.1.0, calls them, and
// reads the agent's RSS.
func (b *bench) fill(ctx context.Context, ref string, rep *report) error {
	const ver = "1.1.0"
	if _, _, err := b.api.Services().Declare(ctx, service, ver, api.VersionRequest{Clients: ">= 1.0"}, nil); err != nil {
		return err
	}
	ids := make([]string, b.o.containers)
	for i := range ids {
		ids[i] = fmt.Sprintf("rss-%d", i+1)
		if err := b.declare(ctx, ids[i], ver, ref); err != nil {
			return fmt.Errorf("declare container %s: %w", ids[i], err)
		}
	}
	if err := waitFor(ctx, 2*time.Minute, fmt.Sprintf("%d containers running", len(ids)), func() error {
		for _, id := range ids {
			ct, _, err := b.api.Containers().Info(ctx, id, nil)
			if err != nil {
				return err
			}
			if ct.Status == nil || ct.Status.State != api.ContainerRunning {
				return fmt.Errorf("%s not running yet", id)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	client := &http.Client{}
	for range 20 * len(ids) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.gw+"/greeter/hello", nil)
		req.Header.Set(api.HeaderClientVersion, "1.0.0")
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("call through the gateway: %w", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("call through the gateway: status %d", resp.StatusCode)
		}
	}
	time.Sleep(2 * time.Second) // a few heartbeats and health checks
	rep.rssLoaded = rss(b.agent.cmd.Process.Pid)
	rep.serverRSS = rss(b.procs[0].cmd.Process.Pid)
	return nil
}

// rss is pid's resident set size in bytes (VmRSS), or 0.
func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func waitFor(ctx context.Context, d time.Duration, what string, cond func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("timed out waiting for %s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func runcVersion(runc string) string {
	out, err := exec.Command(runc, "--version").Output()
	if err != nil {
		return "runc"
	}
	return strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0]
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/(1<<20)) }

func (r *report) deployOverFloor() time.Duration { return median(r.deploy) - median(r.floor) }

func (r *report) ok() bool { return r.deployOverFloor() <= deployGoal && r.rssLoaded <= rssGoal }

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func (r *report) print(w io.Writer, runc string) {
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(w, "oci driver benchmark (%s; load average %s)\n", runc, strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Fprintf(w, "image unpack, greeter (%s of layers), %d times:\n", mb(r.imageBytes), len(r.unpackFirst))
	fmt.Fprintf(w, "  first use (fresh cache): median %s (min %s, max %s)\n", ms(median(r.unpackFirst)), ms(slices.Min(r.unpackFirst)), ms(slices.Max(r.unpackFirst)))
	fmt.Fprintf(w, "  cached:                  median %s (min %s, max %s)\n", ms(median(r.cached)), ms(slices.Min(r.cached)), ms(slices.Max(r.cached)))
	fmt.Fprintf(w, "declare -> first call served by the new oci container, image cached, %d rounds:\n", len(r.deploy))
	fmt.Fprintf(w, "  declare to first call:   median %s (min %s, max %s); container started (runc's pid) at median %s\n",
		ms(median(r.deploy)), ms(slices.Min(r.deploy)), ms(slices.Max(r.deploy)), ms(median(r.start)))
	fmt.Fprintf(w, "  floor (runc run of the same bundle to its first /healthz 200): median %s (min %s, max %s)\n",
		ms(median(r.floor)), ms(slices.Min(r.floor)), ms(slices.Max(r.floor)))
	fmt.Fprintf(w, "  over the floor: %s (goal <= %s): %s\n", ms(r.deployOverFloor()), ms(deployGoal), verdict(r.deployOverFloor() <= deployGoal))
	fmt.Fprintf(w, "agent RSS (agent alone; the registry is a separate server of %s):\n", mb(r.serverRSS))
	fmt.Fprintf(w, "  idle: %s; with %d oci containers running: %s (goal <= %s): %s\n",
		mb(r.rssIdle), r.containers, mb(r.rssLoaded), mb(rssGoal), verdict(r.rssLoaded <= rssGoal))
}
