package hostbed

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

const (
	nsPrefix     = "cxbed-"
	bridgePrefix = "cxbr"
	vethPrefix   = "cxv"
	// maxHosts bounds the hosts of one bed: addresses .10 to .99.
	maxHosts = 90
)

// ErrUnavailable says that namespaces cannot be made here.
var ErrUnavailable = errors.New("hostbed: network namespaces unavailable")

// Available reports whether a bed can be made: root, ip and nft.
func Available() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: not root", ErrUnavailable)
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%w: %s not found (apt-get install iproute2 nftables)", ErrUnavailable, tool)
		}
	}
	return nil
}

// Config configures a Bed.
type Config struct {
	// Dir holds the process logs and the hosts' files; it must exist.
	Dir    string
	Logger hclog.Logger
}

// Bed is a private bridge and the hosts on it.
type Bed struct {
	cfg    Config
	log    hclog.Logger
	tag    string // the creating process's id
	bridge string
	subnet string // "10.213.X."

	mu     sync.Mutex
	hosts  []*Host
	procs  []*Proc
	mounts []string
	rules  map[string]*hostRules // by host name
	closed bool
}

// Host is one network namespace on the bed.
type Host struct {
	Name string // short name, e.g. "s1"
	NS   string // namespace name
	IP   string
	bed  *Bed
	veth string
}

// New makes the bridge, after sweeping what dead runs left behind.
func New(cfg Config) (*Bed, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	Sweep(cfg.Logger)
	pid := os.Getpid()
	b := &Bed{cfg: cfg, log: cfg.Logger, tag: strconv.Itoa(pid), rules: map[string]*hostRules{}}
	b.bridge = bridgePrefix + b.tag
	// The third octet comes from the pid; skip one a live bed holds.
	used, _ := run("ip", "-4", "-o", "addr", "show")
	for i := range 250 {
		x := 1 + (pid+i)%250
		prefix := fmt.Sprintf("10.213.%d.", x)
		if !strings.Contains(used, " "+prefix) {
			b.subnet = prefix
			break
		}
	}
	if b.subnet == "" {
		return nil, errors.New("hostbed: no free /24 in 10.213.0.0/16")
	}
	steps := [][]string{
		{"ip", "link", "add", b.bridge, "type", "bridge"},
		{"ip", "addr", "add", b.subnet + "1/24", "dev", b.bridge},
		{"ip", "link", "set", b.bridge, "up"},
	}
	for _, s := range steps {
		if _, err := run(s...); err != nil {
			_ = b.Close()
			return nil, fmt.Errorf("make bridge: %w", err)
		}
	}
	b.log.Info("bed ready", "bridge", b.bridge, "subnet", b.subnet+"0/24")
	return b, nil
}

// ControlIP is the machine's own address on the bridge.
func (b *Bed) ControlIP() string { return b.subnet + "1" }

// Dir is the bed's directory.
func (b *Bed) Dir() string { return b.cfg.Dir }

// AddHost makes a namespace with its own address on the bridge and
// loopback up, and no route but its own /24.
func (b *Bed) AddHost(name string) (*Host, error) {
	b.mu.Lock()
	n := len(b.hosts)
	b.mu.Unlock()
	if n >= maxHosts {
		return nil, fmt.Errorf("add host %s: a bed holds at most %d hosts", name, maxHosts)
	}
	h := &Host{Name: name, NS: nsPrefix + b.tag + "-" + name, IP: fmt.Sprintf("%s%d", b.subnet, 10+n), bed: b,
		veth: fmt.Sprintf("%s%sh%d", vethPrefix, b.tag, n)}
	b.mu.Lock()
	b.hosts = append(b.hosts, h)
	b.mu.Unlock()
	steps := [][]string{
		{"ip", "netns", "add", h.NS},
		{"ip", "link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.NS},
		{"ip", "link", "set", h.veth, "master", b.bridge, "up"},
		{"ip", "-n", h.NS, "addr", "add", h.IP + "/24", "dev", "eth0"},
		{"ip", "-n", h.NS, "link", "set", "eth0", "up"},
		{"ip", "-n", h.NS, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if _, err := run(s...); err != nil {
			return nil, fmt.Errorf("add host %s: %w", name, err)
		}
	}
	if err := os.MkdirAll(h.Dir(), 0o755); err != nil {
		return nil, fmt.Errorf("add host %s: %w", name, err)
	}
	b.log.Debug("host added", "host", name, "ns", h.NS, "ip", h.IP)
	return h, nil
}

// Hosts returns the bed's hosts in the order they were added.
func (b *Bed) Hosts() []*Host {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.hosts)
}

// Host returns the host of that name, or nil.
func (b *Bed) Host(name string) *Host {
	for _, h := range b.Hosts() {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// Dir is the host's own directory under the bed's.
func (h *Host) Dir() string { return filepath.Join(h.bed.cfg.Dir, h.Name) }

// Close kills every process of every host, removes the namespaces, the
// links, the bridge and the mounts. It goes on past errors and returns them
// joined.
func (b *Bed) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	hosts, procs, mounts := b.hosts, b.procs, b.mounts
	b.mu.Unlock()
	var errs []error
	for _, p := range procs {
		p.Kill()
	}
	for _, h := range hosts {
		killNamespace(h.NS)
		if _, err := run("ip", "netns", "del", h.NS); err != nil && !strings.Contains(err.Error(), "No such file") {
			errs = append(errs, err)
		}
		_, _ = run("ip", "link", "del", h.veth) // gone with its peer, as a rule
	}
	for _, m := range mounts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
		}
	}
	if b.bridge != "" {
		if _, err := run("ip", "link", "del", b.bridge); err != nil && !strings.Contains(err.Error(), "Cannot find device") {
			errs = append(errs, err)
		}
	}
	b.log.Info("bed removed", "bridge", b.bridge, "hosts", len(hosts))
	return errors.Join(errs...)
}

// killNamespace kills with SIGKILL every process in a namespace: the
// agents' containers outlive their agent and would hold it.
func killNamespace(ns string) {
	out, err := run("ip", "netns", "pids", ns)
	if err != nil {
		return
	}
	for _, f := range strings.Fields(out) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// Sweep removes the namespaces, links and mounts that beds of processes no
// longer alive left behind (a run that was killed, or crashed before its
// cleanup). Beds of live processes are left alone.
func Sweep(log hclog.Logger) {
	dead := func(tag string) bool {
		pid, err := strconv.Atoi(tag)
		if err != nil || pid <= 0 {
			return false
		}
		return syscall.Kill(pid, 0) == syscall.ESRCH
	}
	if out, err := run("ip", "netns", "list"); err == nil {
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) == 0 || !strings.HasPrefix(f[0], nsPrefix) {
				continue
			}
			tag, _, _ := strings.Cut(strings.TrimPrefix(f[0], nsPrefix), "-")
			if dead(tag) {
				killNamespace(f[0])
				_, _ = run("ip", "netns", "del", f[0])
				log.Warn("removed a stale namespace", "ns", f[0])
			}
		}
	}
	if out, err := run("ip", "-o", "link", "show"); err == nil {
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			var tag string
			switch {
			case strings.HasPrefix(name, bridgePrefix):
				tag = strings.TrimPrefix(name, bridgePrefix)
			case strings.HasPrefix(name, vethPrefix):
				tag, _, _ = strings.Cut(strings.TrimPrefix(name, vethPrefix), "h")
			default:
				continue
			}
			if dead(tag) {
				_, _ = run("ip", "link", "del", name)
				log.Warn("removed a stale link", "link", name)
			}
		}
	}
	if f, err := os.Open("/proc/self/mounts"); err == nil {
		var stale []string
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 2 {
				continue
			}
			// Bed mounts are at <dir>/cxbed-<pid>-<host>-data.
			base := filepath.Base(fields[1])
			if rest, ok := strings.CutPrefix(base, nsPrefix); ok && strings.HasSuffix(base, "-data") {
				tag, _, _ := strings.Cut(rest, "-")
				if dead(tag) {
					stale = append(stale, fields[1])
				}
			}
		}
		f.Close()
		for _, m := range stale {
			if syscall.Unmount(m, syscall.MNT_DETACH) == nil {
				log.Warn("removed a stale mount", "mount", m)
			}
		}
	}
}

// run runs a command and returns its output; the error carries stderr.
func run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// runInput runs a command with stdin.
func runInput(stdin string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
