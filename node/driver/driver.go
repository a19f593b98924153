package driver

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Driver starts, watches and stops containers on one node. The node agent is
// its only consumer; it is kept to the four things every driver can do.
// Abilities only some drivers have are the one-method interfaces below, found
// by a type assertion.
type Driver interface {
	// Start launches the container described by spec and returns once the
	// process exists (not once it is healthy). The process is not bound to
	// ctx: ctx only bounds the start itself.
	Start(ctx context.Context, spec Spec) (*Handle, error)
	// Wait returns a channel that receives the container's ExitResult once,
	// then is closed. Every caller gets the result, and a Wait after the
	// exit gets a channel that already holds it. If ctx ends first, the
	// channel is closed without a value.
	Wait(ctx context.Context, id string) (<-chan ExitResult, error)
	// Stop asks the container to exit (SIGTERM to its process group), waits
	// up to grace, then kills it (SIGKILL to the group), and returns once it
	// has exited. It is idempotent: stopping an exited container is not an
	// error.
	Stop(ctx context.Context, id string, grace time.Duration) error
	// Inspect reports what the driver knows of the container now.
	Inspect(id string) (Status, error)
}

// Recoverer re-adopts a process left running by a previous agent, from the
// Handle that agent persisted. It returns ErrNotRunning when that process is
// gone or its pid now belongs to another process.
type Recoverer interface {
	Recover(h *Handle) error
}

// LogTailer returns the last lines a container wrote, stdout and stderr in
// the order they were written, for the message of a container reported
// "failed".
type LogTailer interface {
	Tail(id string, lines int) (string, error)
}

// LogFiler names the file a container's output (stdout and stderr, in the
// order written) goes to, for an agent that serves it whole or follows it,
// and keeps it once the container is removed. The file may be cut at its
// head when it grows past the driver's cap. It returns ErrNotFound for a
// container the driver has no files of.
type LogFiler interface {
	LogFile(id string) (string, error)
}

// Remover forgets an exited container for good: its persisted handle and its
// logs. It returns ErrRunning while the container runs.
type Remover interface {
	Remove(id string) error
}

// Spec is what to run for one container.
type Spec struct {
	// ID is the container id; it names the container's directory, so it is
	// limited to letters, digits, '.', '_' and '-'.
	ID string
	// NodeID is the node the container runs on (COEXIST_NODE_ID).
	NodeID string
	// Services is the service set, "orders@1.4.2,payments@1.1.0"
	// (COEXIST_SERVICES).
	Services string
	// Driver names the driver that runs the container, for a Mux ("" is
	// the Mux's default).
	Driver string
	// Command is an absolute path, or a name looked up in the agent's PATH.
	// For the oci driver it is optional and replaces the image's entrypoint.
	Command string
	// Image is the image the oci driver runs (node/image resolves it).
	Image string
	// Resources are the container's limits (oci only).
	Resources Resources
	Args      []string
	// Env is added to the agent's minimal environment (PATH, HOME). The
	// driver's own variables (PORT, COEXIST_*) win over it.
	Env map[string]string
}

// maxIDLen keeps a container directory name well inside NAME_MAX.
const maxIDLen = 128

// Validate reports the first problem with s, wrapped in ErrInvalidSpec.
func (s Spec) Validate() error {
	if err := validateID(s.ID); err != nil {
		return err
	}
	if s.Command == "" && s.Image == "" {
		return fmt.Errorf("%w: command: must not be empty", ErrInvalidSpec)
	}
	if s.Resources.MemoryBytes < 0 || s.Resources.CPU < 0 {
		return fmt.Errorf("%w: resources: must not be negative", ErrInvalidSpec)
	}
	for k, v := range s.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("%w: env: invalid name %q", ErrInvalidSpec, k)
		}
		if strings.ContainsRune(v, 0) {
			return fmt.Errorf("%w: env %s: value contains a NUL byte", ErrInvalidSpec, k)
		}
	}
	return nil
}

// validateID accepts ids that are safe as one path element.
func validateID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: id: must not be empty", ErrInvalidSpec)
	}
	if len(id) > maxIDLen {
		return fmt.Errorf("%w: id: longer than %d characters", ErrInvalidSpec, maxIDLen)
	}
	if id == "." || id == ".." {
		return fmt.Errorf("%w: id: %q is not allowed", ErrInvalidSpec, id)
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
		default:
			return fmt.Errorf("%w: id: %q contains %q; use letters, digits, '.', '_' and '-'", ErrInvalidSpec, id, r)
		}
	}
	return nil
}

// Handle identifies a started container well enough for another agent to
// find it again: the pid together with the process start time names one
// process for the life of the machine, where a pid alone may be reused.
// It is what the exec driver persists in handle.json.
type Handle struct {
	ID string `json:"id"`
	// Driver is the driver that started it ("" for the exec driver's
	// handles of before there were several).
	Driver string `json:"driver,omitempty"`
	PID    int    `json:"pid"`
	// StartTime is the process start time in clock ticks since boot, field
	// 22 of /proc/<pid>/stat.
	StartTime uint64    `json:"start_time"`
	StartedAt time.Time `json:"started_at"`
	Port      int       `json:"port"`
	// Endpoint is "127.0.0.1:<port>": containers listen on loopback only.
	Endpoint string `json:"endpoint"`
	// Stdout and Stderr are the paths of the files the container's stdout
	// and stderr go to: the same file, output.log, so that its lines keep
	// the order they were written in. (Agents before that wrote stdout.log
	// and stderr.log; a container they left running keeps its two files.)
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	// Image is the manifest digest an oci container runs; Cgroup its
	// memory cgroup directory, read for OOM kills.
	Image  string `json:"image,omitempty"`
	Cgroup string `json:"cgroup,omitempty"`
}

// logs returns the distinct paths of h's log files.
func (h *Handle) logs() []string {
	if h.Stderr == "" || h.Stderr == h.Stdout {
		return []string{h.Stdout}
	}
	return []string{h.Stdout, h.Stderr}
}

// State is a container's process state as the driver sees it.
type State string

// The states Inspect reports.
const (
	// StateRunning: the process is alive (and is the one that was started).
	StateRunning State = "running"
	// StateExited: the process has exited, or its pid now names another process.
	StateExited State = "exited"
	// StateUnknown: the driver cannot tell.
	StateUnknown State = "unknown"
)

// Status is Inspect's answer.
type Status struct {
	ID        string
	State     State
	PID       int
	Port      int
	Endpoint  string
	StartedAt time.Time
	// Recovered is true for a process re-adopted from a previous agent:
	// it is not the driver's child, so its exit code is unknown.
	Recovered bool
	// Exit is set once State is StateExited.
	Exit *ExitResult
}

// ExitResult is how a container's process ended.
type ExitResult struct {
	// ExitCode is the process's exit status; 128+Signal when a signal
	// killed it (the shell's convention), so that a non-zero ExitCode
	// always means failure; -1 when it is unknown (see Err).
	ExitCode int
	// Signal is the number of the signal that killed the process, or 0.
	Signal int
	// Err is set when the exit could not be observed fully, e.g.
	// ErrExitUnknown for a process that was not the driver's child.
	Err error
	// At is when the driver saw the exit.
	At time.Time
	// OOMKilled: the kernel killed it for going over its memory limit.
	OOMKilled bool
}

// Describe says how the process ended, for a container's message.
func (r ExitResult) Describe() string {
	if r.OOMKilled {
		return fmt.Sprintf("killed: out of memory (over its resources.memory limit; exit code %d)", r.ExitCode)
	}
	return fmt.Sprintf("exited with code %d", r.ExitCode)
}

// Successful reports whether the process exited by itself with status 0.
func (r ExitResult) Successful() bool {
	return r.ExitCode == 0 && r.Signal == 0 && r.Err == nil
}

// Image is an image unpacked for the oci driver: a root file system shared
// read-only by every container of the image, and the image's config.
type Image struct {
	// Digest is the image's manifest digest, "sha256:<hex>".
	Digest string
	// Rootfs is the absolute path of the unpacked file system.
	Rootfs     string
	Entrypoint []string
	Cmd        []string
	// Env is the image's environment, KEY=VALUE.
	Env        []string
	WorkingDir string
}

// ImageStore unpacks images for the oci driver (package node/image; a fake
// in tests). Unpack resolves ref and unpacks it once per digest.
type ImageStore interface {
	Unpack(ctx context.Context, ref string) (Image, error)
}

// Resources are a container's limits, applied by the oci driver as cgroup
// limits; zero means no limit.
type Resources struct {
	MemoryBytes int64
	// CPU is in cores (0.5: half of one core's time).
	CPU float64
}
