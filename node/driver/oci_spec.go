package driver

import (
	"os"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// cpuPeriod is the CFS period of a CPU limit, in microseconds.
const cpuPeriod = 100000

// runtimeSpec is the bundle's config.json: the image's root read-only,
// a tmpfs /tmp, its own pid, mount, ipc and uts namespaces, the host's
// network, runc's default capabilities, masked paths and devices, and the
// spec's resources as cgroup limits (docs/design.md §6).
func (o *OCI) runtimeSpec(spec Spec, img Image, port int) *specs.Spec {
	args := append([]string(nil), img.Entrypoint...)
	if spec.Command != "" {
		args = []string{spec.Command}
	}
	if len(spec.Args) > 0 || spec.Command != "" {
		args = append(args, spec.Args...)
	} else {
		args = append(args, img.Cmd...)
	}
	cwd := img.WorkingDir
	if cwd == "" {
		cwd = "/"
	}
	caps := []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}
	hostname := spec.ID
	if len(hostname) > 63 {
		hostname = hostname[:63]
	}
	s := &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			User: specs.User{UID: 0, GID: 0},
			Args: args, Env: o.env(spec, img, port), Cwd: cwd,
			Capabilities:    &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps},
			NoNewPrivileges: true,
		},
		Root:     &specs.Root{Path: img.Rootfs, Readonly: true},
		Hostname: hostname,
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777", "size=" + strconv.FormatInt(o.cfg.TmpBytes, 10)}},
		},
		Linux: &specs.Linux{
			CgroupsPath: o.cgroup + "/" + spec.ID,
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.MountNamespace},
			},
			Resources: &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}},
			MaskedPaths: []string{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
	// The host's name service files, read-only: the container shares the
	// host's network.
	for _, f := range []string{"/etc/hosts", "/etc/resolv.conf"} {
		if _, err := os.Stat(f); err == nil {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: f, Type: "bind", Source: f, Options: []string{"rbind", "ro", "nosuid", "nodev", "noexec"}})
		}
	}
	if m := spec.Resources.MemoryBytes; m > 0 {
		s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &m}
		if swapAccounting() {
			// Memory and swap together as much as memory, that is no
			// swap: going over is an OOM kill.
			s.Linux.Resources.Memory.Swap = &m
		}
	}
	if c := spec.Resources.CPU; c > 0 {
		quota, period := int64(c*cpuPeriod), uint64(cpuPeriod)
		s.Linux.Resources.CPU = &specs.LinuxCPU{Quota: &quota, Period: &period}
	}
	return s
}

// swapAccounting reports whether the kernel accounts swap per cgroup (runc
// refuses a swap limit otherwise): always on cgroup v2, with memsw files on v1.
func swapAccounting() bool {
	for _, f := range []string{"/sys/fs/cgroup/cgroup.controllers", "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"} {
		if _, err := os.Stat(f); err == nil {
			return true
		}
	}
	return false
}
