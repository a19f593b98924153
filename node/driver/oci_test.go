package driver

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// requireRunc skips, with one loud line, where runc cannot run containers
// (not installed, or not root); never on the project's machines or CI,
// where the Makefile installs it.
func requireRunc(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("SKIP: oci driver tests need runc (apt-get install runc): ", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("SKIP: oci driver tests need root to run runc")
	}
}

// dirImages is an ImageStore of one unpacked image: a directory holding the
// static probe binary (testdata/ociprobe) and the mount points.
type dirImages struct{ img Image }

func (d dirImages) Unpack(ctx context.Context, ref string) (Image, error) {
	if ref != "probe" {
		return Image{}, errors.New("no such image " + ref)
	}
	return d.img, nil
}

var (
	probeOnce sync.Once
	probeImg  Image
	probeErr  error
)

// probeImage builds the probe statically into a rootfs, once per test run.
func probeImage(t *testing.T) Image {
	t.Helper()
	probeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ociprobe-")
		if err != nil {
			probeErr = err
			return
		}
		rootfs := filepath.Join(dir, "rootfs")
		for _, d := range []string{"proc", "dev", "sys", "tmp", "etc"} {
			if probeErr = os.MkdirAll(filepath.Join(rootfs, d), 0o755); probeErr != nil {
				return
			}
		}
		for _, f := range []string{"etc/hosts", "etc/resolv.conf"} {
			if probeErr = os.WriteFile(filepath.Join(rootfs, f), nil, 0o644); probeErr != nil {
				return
			}
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(rootfs, "ociprobe"), "./testdata/ociprobe")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			probeErr = errors.New("build probe: " + err.Error() + ": " + string(out))
			return
		}
		probeImg = Image{Digest: "sha256:probe", Rootfs: rootfs, Entrypoint: []string{"/ociprobe"}, Env: []string{"PROBE=1"}}
	})
	if probeErr != nil {
		t.Fatal(probeErr)
	}
	return probeImg
}

// newTestOCI returns an OCI driver on a fresh data dir and port window; at
// the end of the test it kills whatever it still runs.
func newTestOCI(t *testing.T, dataDir string) *OCI {
	t.Helper()
	requireRunc(t)
	img := probeImage(t)
	min, max := portWindow(t, 20)
	o, err := NewOCI(OCIConfig{DataDir: dataDir, Images: dirImages{img}, PortMin: min, PortMax: max,
		LogCheckInterval: 50 * time.Millisecond, KillTimeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("NewOCI: %v", err)
	}
	t.Cleanup(func() {
		o.mu.Lock()
		ids := slices.Collect(func(yield func(string) bool) {
			for id := range o.tasks {
				if !yield(id) {
					return
				}
			}
		})
		o.mu.Unlock()
		for _, id := range ids {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_ = o.Stop(ctx, id, -1)
			cancel()
		}
		_ = o.Close()
	})
	return o
}

func startOCI(t *testing.T, o *OCI, spec Spec) *Handle {
	t.Helper()
	if spec.Image == "" {
		spec.Image = "probe"
	}
	h, err := o.Start(context.Background(), spec)
	if err != nil {
		t.Fatalf("Start %s: %v", spec.ID, err)
	}
	eventually(t, 10*time.Second, "container "+h.ID+" to answer /health", func() bool {
		_, err := get(h.Endpoint, "/health")
		return err == nil
	})
	return h
}

func TestOCIStartServeStop(t *testing.T) {
	o := newTestOCI(t, t.TempDir())
	h := startOCI(t, o, Spec{ID: "web", NodeID: "n1", Services: "probe@1.0.0", Env: map[string]string{"EXTRA": "x"}})
	if h.PID <= 1 || h.Driver != "oci" || h.Cgroup == "" {
		t.Fatalf("handle = %+v; want a host pid, driver oci and a cgroup", h)
	}
	if st, err := o.Inspect("web"); err != nil || st.State != StateRunning {
		t.Fatalf("Inspect = %+v, %v; want running", st, err)
	}
	ch, err := o.Wait(context.Background(), "web")
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Stop(context.Background(), "web", 5*time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	r := receive(t, ch)
	if !r.Successful() || r.OOMKilled {
		t.Fatalf("exit = %+v; want 0 after SIGTERM", r)
	}
	if out, _ := o.Tail("web", 5); !strings.Contains(out, "got SIGTERM") {
		t.Fatalf("tail = %q; want the container's own output", out)
	}
	if _, err := o.runc(context.Background(), "state", "web"); err == nil {
		t.Fatal("runc still knows the container after its exit; want it deleted")
	}
	if err := o.Remove("web"); err != nil {
		t.Fatal(err)
	}
}

func TestOCIExitCode(t *testing.T) {
	o := newTestOCI(t, t.TempDir())
	h := startOCI(t, o, Spec{ID: "crash"})
	ch, _ := o.Wait(context.Background(), "crash")
	_, _ = get(h.Endpoint, "/exit?code=3")
	if r := receive(t, ch); r.ExitCode != 3 || r.OOMKilled {
		t.Fatalf("exit = %+v; want code 3", r)
	}
}

func TestOCIIsolation(t *testing.T) {
	o := newTestOCI(t, t.TempDir())
	h := startOCI(t, o, Spec{ID: "iso"})
	body, err := get(h.Endpoint, "/procs")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	if err := json.Unmarshal([]byte(body), &pids); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	if !slices.Equal(pids, []int{1}) {
		t.Errorf("the container sees pids %v; want only its own init, 1 (agent pid %d)", pids, os.Getpid())
	}
	if out, err := get(h.Endpoint, "/write?path=/evil"); err == nil {
		t.Errorf("writing / succeeded (%q); want a read-only root", out)
	} else if !strings.Contains(out, "read-only") {
		t.Errorf("writing /: %q; want a read-only file system error", out)
	}
	if _, err := get(h.Endpoint, "/write?path=/tmp/ok"); err != nil {
		t.Errorf("writing /tmp: %v; want it writable", err)
	}
	if _, err := os.Stat(filepath.Join(probeImage(t).Rootfs, "tmp", "ok")); err == nil {
		t.Error("the container's /tmp is the image's; want a tmpfs of its own")
	}
}

func TestOCIMemoryLimitOOM(t *testing.T) {
	o := newTestOCI(t, t.TempDir())
	h := startOCI(t, o, Spec{ID: "hog", Resources: Resources{MemoryBytes: 32 << 20, CPU: 0.5}})
	ch, _ := o.Wait(context.Background(), "hog")
	_, _ = get(h.Endpoint, "/alloc?mib=128")
	r := receive(t, ch)
	if !r.OOMKilled || r.Signal != 9 {
		t.Fatalf("exit = %+v; want an OOM kill (signal 9)", r)
	}
	if !strings.Contains(r.Describe(), "out of memory") {
		t.Fatalf("Describe = %q; want it to say out of memory", r.Describe())
	}
}

func TestOCIRecover(t *testing.T) {
	dir := t.TempDir()
	first := newTestOCI(t, dir)
	h := startOCI(t, first, Spec{ID: "keep"})
	gone := startOCI(t, first, Spec{ID: "gone"})
	_ = first.Close() // the agent goes; its containers stay

	// What runc knew of "gone" disappears while no agent watches.
	if _, err := first.runc(context.Background(), "kill", "gone", "KILL"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "gone's init to exit", func() bool { return dead(gone.PID) })
	_, _ = first.runc(context.Background(), "delete", "--force", "gone")

	second := newTestOCI(t, dir)
	hs, err := second.LoadHandles()
	if err != nil || len(hs) != 2 {
		t.Fatalf("LoadHandles = %d handles, %v; want 2", len(hs), err)
	}
	for _, lh := range hs {
		err := second.Recover(lh)
		switch lh.ID {
		case "keep":
			if err != nil {
				t.Fatalf("Recover keep: %v", err)
			}
		case "gone":
			if !errors.Is(err, ErrNotRunning) {
				t.Fatalf("Recover gone: %v; want ErrNotRunning", err)
			}
		}
	}
	st, err := second.Inspect("keep")
	if err != nil || st.State != StateRunning || !st.Recovered || st.PID != h.PID {
		t.Fatalf("Inspect = %+v, %v; want running, recovered, pid %d", st, err, h.PID)
	}
	if _, err := get(h.Endpoint, "/health"); err != nil {
		t.Fatalf("re-adopted container stopped serving: %v", err)
	}
	ch, _ := second.Wait(context.Background(), "keep")
	if err := second.Stop(context.Background(), "keep", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if r := receive(t, ch); r.OOMKilled {
		t.Fatalf("exit = %+v", r)
	}
	if !dead(h.PID) {
		t.Fatal("container still runs after Stop")
	}
}

// runcLogger returns a runc wrapper that appends each of its commands (the
// argument after --root <dir>) to a log, then runs the real runc; and a
// function reading that log.
func runcLogger(t *testing.T) (string, func() []string) {
	t.Helper()
	real, err := exec.LookPath("runc")
	if err != nil {
		t.Skip("SKIP: oci driver tests need runc (apt-get install runc): ", err)
	}
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	script := filepath.Join(dir, "runc")
	body := "#!/bin/sh\necho \"$3\" >> " + log + "\nexec " + real + " \"$@\"\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script, func() []string {
		b, _ := os.ReadFile(log)
		return strings.Fields(string(b))
	}
}

// A start runs one runc (run) unless runc holds a container of that id from
// an earlier run: a `runc delete` of nothing costs a runc exec, several
// milliseconds of every start on a loaded machine (issue 14).
func TestOCIStartExecsRuncOnce(t *testing.T) {
	requireRunc(t)
	runc, calls := runcLogger(t)
	min, max := portWindow(t, 20)
	o, err := NewOCI(OCIConfig{DataDir: t.TempDir(), Images: dirImages{probeImage(t)}, Runc: runc,
		PortMin: min, PortMax: max, KillTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, id := range []string{"fresh", "stale"} {
			_ = o.Stop(context.Background(), id, -1)
			_, _ = o.runc(context.Background(), "delete", "--force", id)
		}
		_ = o.Close()
	})
	startOCI(t, o, Spec{ID: "fresh", NodeID: "n1", Services: "probe@1.0.0"})
	if got := calls(); !slices.Equal(got, []string{"run"}) {
		t.Fatalf("runc commands of a fresh start = %q; want only run", got)
	}

	// A container of the same id that an earlier agent left created (its
	// bundle copied from the running one): the start deletes it first.
	bundle := filepath.Join(t.TempDir(), "bundle")
	if err := os.MkdirAll(bundle, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(filepath.Join(o.store.dir("fresh"), "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	// Its init process keeps runc's stdio: a file, not a pipe to wait on.
	out, err := os.Create(filepath.Join(bundle, "output"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	create := exec.Command(runc, "--root", o.root, "create", "--bundle", bundle, "stale")
	create.Stdout, create.Stderr = out, out
	if err := create.Run(); err != nil {
		b, _ := os.ReadFile(out.Name())
		t.Fatalf("runc create: %v: %s", err, b)
	}
	startOCI(t, o, Spec{ID: "stale", NodeID: "n1", Services: "probe@1.0.0"})
	if got := calls(); !slices.Contains(got, "delete") {
		t.Fatalf("runc commands = %q; want a delete of the stale container before its run", got)
	}
}
