package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/coexist-dev/coexist/node/image"
)

// requireRunc skips, with one loud line, where runc cannot run containers
// (not installed, not root); `make test` installs it, so never there.
func requireRunc(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("SKIP: oci tests need runc (apt-get install runc): ", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("SKIP: oci tests need root to run runc")
	}
}

var (
	imagesMu  sync.Mutex
	imagesDir string
	packed    = map[string]bool{}
)

// greeterImage packs the static greeter claiming version ver into the tests'
// image layout (once per version) and returns its reference.
func greeterImage(t *testing.T, ver string) string {
	t.Helper()
	bin := greeterPath(t)
	imagesMu.Lock()
	defer imagesMu.Unlock()
	if imagesDir == "" {
		imagesDir = filepath.Join(filepath.Dir(bin), "images")
	}
	if !packed[ver] {
		if _, err := image.Pack(image.PackSpec{Binary: bin, Tag: "greeter:" + ver, Out: imagesDir,
			Env: []string{"GREETER_VERSION=" + ver}}); err != nil {
			t.Fatalf("pack greeter %s: %v", ver, err)
		}
		packed[ver] = true
	}
	return "oci:" + imagesDir + ":" + ver
}

// The hot-add, retire and agent-restart tests again, with oci containers.

func TestOCIHotAddLeavesOthersRunning(t *testing.T) {
	requireRunc(t)
	testHotAdd(t, "oci")
}

func TestOCIRetireUnderLoad(t *testing.T) {
	requireRunc(t)
	testRetireUnderLoad(t, "oci")
}

func TestOCIAgentRestartReadoptsContainers(t *testing.T) {
	requireRunc(t)
	testAgentRestart(t, "oci")
}

// assertContainerized fails unless pid runs in a pid namespace of its own,
// as an oci container does (an exec container shares the agent's).
func assertContainerized(t *testing.T, pid int) {
	t.Helper()
	own, err1 := os.Readlink("/proc/self/ns/pid")
	its, err2 := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "ns", "pid"))
	if err1 != nil || err2 != nil || own == its {
		t.Fatalf("pid %d: pid namespace %q (%v), the test's %q (%v); want one of its own", pid, its, err2, own, err1)
	}
}
