package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/node/gateway"
	"github.com/coexist-dev/coexist/routing"
)

// runProfile serves gateway.Gateway in this process, as the agent does, in
// front of one greeter started directly, with a table that has that greeter
// as the one running container of greeter@1.0.0 on this node; loads it with
// wrk and writes the gateway's CPU profile to o.cpuProfile. This process
// does nothing else meanwhile, so the profile is the gateway's (and the Go
// runtime's on its behalf).
func runProfile(ctx context.Context, o *options, root string) error {
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	endpoint := "127.0.0.1:" + strconv.Itoa(ports[0])
	logf, err := os.Create(filepath.Join(root, "greeter.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(o.greeterBin, "--version", baseVersion)
	cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(ports[0]))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	gp := track("greeter", cmd, logf.Name())
	defer gp.stop(5 * time.Second)

	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(ports[1]))
	if err != nil {
		return err
	}
	gwAddr := ln.Addr().String()
	now := time.Now()
	table := routing.NewTable(
		[]api.Service{{Name: serviceName, Versions: []api.ServiceVersion{{Service: serviceName, Version: baseVersion,
			Clients: clientRange, State: api.VersionActive}}}},
		[]api.Container{{ID: baseID, Node: nodeID, Services: []api.ServiceRef{{Service: serviceName, Version: baseVersion}},
			Driver: "exec", Desired: api.DesiredPresent,
			Status: &api.ContainerStatus{State: api.ContainerRunning, Endpoint: endpoint, PID: cmd.Process.Pid, StartedAt: &now,
				Services: []api.ServiceStatus{{Service: serviceName, Version: baseVersion, State: api.ServiceServing}}}}},
		[]api.Node{{ID: nodeID, Address: "127.0.0.1", Gateway: gwAddr, Status: api.NodeReady}},
	)
	gw, err := gateway.NewGateway(gateway.GatewayConfig{NodeID: nodeID, Table: func() *routing.Table { return table }})
	if err != nil {
		return err
	}
	go func() { _ = gw.Serve(ln) }()
	defer gw.Close()

	t := &target{name: "in-process gateway", addr: gwAddr, servedBy: serviceName + "@" + baseVersion + " " + baseID}
	if err := checkTarget(ctx, &target{name: "greeter", addr: endpoint}); err != nil {
		return err
	}
	if err := checkTarget(ctx, t); err != nil {
		return err
	}
	step("profile: in-process gateway on %s in front of greeter %s; load average %s", gwAddr, endpoint, loadAvg())
	if _, err := runWrk(ctx, o.wrkBin, endpoint, o.threads, o.connections, o.warmup); err != nil {
		return err
	}
	direct, err := runWrk(ctx, o.wrkBin, endpoint, o.threads, o.connections, o.duration)
	if err != nil {
		return err
	}
	step("  direct: %.0f calls/s, p50 %s, p99 %s", direct.perSec(), fmtDur(direct.pct(50)), fmtDur(direct.pct(99)))
	if _, err := runWrk(ctx, o.wrkBin, gwAddr, o.threads, o.connections, o.warmup); err != nil {
		return err
	}
	f, err := os.Create(o.cpuProfile)
	if err != nil {
		return err
	}
	defer f.Close()
	c0, r0, w0 := rusageSelf(), ioSelf("syscr"), ioSelf("syscw")
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	res, err := runWrk(ctx, o.wrkBin, gwAddr, o.threads, o.connections, o.duration)
	pprof.StopCPUProfile()
	cpu, reads, writes := rusageSelf()-c0, ioSelf("syscr")-r0, ioSelf("syscw")-w0
	if err != nil {
		return err
	}
	step("  in-process gateway: %.0f calls/s (%s of direct), p50 %s, p99 %s, %d errors, %d non-2xx; gateway CPU %s/call",
		res.perSec(), ratio(res.perSec(), direct.perSec()), fmtDur(res.pct(50)), fmtDur(res.pct(99)), res.errs, res.non200, cpuPer(cpu, res.calls))
	if res.calls > 0 {
		step("  in-process gateway: %.2f read and %.2f write system calls per call (/proc/self/task/*/io)",
			float64(reads)/float64(res.calls), float64(writes)/float64(res.calls))
	}
	if err := f.Close(); err != nil {
		return err
	}

	// The yardstick: the least a Go proxy does per call (see protoForwarder).
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	pf := startProtoForwarder(pln, endpoint, serviceName+"@"+baseVersion+" "+baseID)
	defer pf.close()
	pt := &target{name: "prototype forwarder", addr: pln.Addr().String(), servedBy: t.servedBy}
	if err := checkTarget(ctx, pt); err != nil {
		return err
	}
	if _, err := runWrk(ctx, o.wrkBin, pt.addr, o.threads, o.connections, o.warmup); err != nil {
		return err
	}
	c0, r0, w0 = rusageSelf(), ioSelf("syscr"), ioSelf("syscw")
	pres, err := runWrk(ctx, o.wrkBin, pt.addr, o.threads, o.connections, o.duration)
	pcpu, preads, pwrites := rusageSelf()-c0, ioSelf("syscr")-r0, ioSelf("syscw")-w0
	if err != nil {
		return err
	}
	step("  prototype forwarder (not the gateway: one goroutine per connection, pinned upstream connection, no routing): %.0f calls/s (%s of direct, %s of the gateway), p50 %s, p99 %s, %d errors, %d non-2xx; CPU %s/call",
		pres.perSec(), ratio(pres.perSec(), direct.perSec()), ratio(pres.perSec(), res.perSec()), fmtDur(pres.pct(50)), fmtDur(pres.pct(99)), pres.errs, pres.non200, cpuPer(pcpu, pres.calls))
	if pres.calls > 0 {
		step("  prototype forwarder: %.2f read and %.2f write system calls per call",
			float64(preads)/float64(pres.calls), float64(pwrites)/float64(pres.calls))
	}

	abs, _ := filepath.Abs(o.cpuProfile)
	step("CPU profile written to %s", abs)
	goBin, err := exec.LookPath("go")
	if err != nil {
		return errors.New("go not found: read the profile with `go tool pprof -top " + abs + "`")
	}
	for _, args := range [][]string{
		{"tool", "pprof", "-top", "-nodecount=35", abs},
		{"tool", "pprof", "-top", "-cum", "-nodecount=45", abs},
	} {
		out, err := exec.CommandContext(ctx, goBin, args...).CombinedOutput()
		fmt.Printf("\n$ go %v\n%s", args, out)
		if err != nil {
			return err
		}
	}
	return nil
}

// ioSelf returns a counter of this process's threads' io files (syscr:
// read system calls, syscw: write system calls), summed over
// /proc/self/task/*/io: /proc/self/io also counts the children reaped, wrk.
func ioSelf(field string) int64 {
	tasks, _ := filepath.Glob("/proc/self/task/*/io")
	var total int64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && k == field {
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				total += n
			}
		}
	}
	return total
}
