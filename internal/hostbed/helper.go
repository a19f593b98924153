package hostbed

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"time"
)

// EnvRole, set in a process's environment, makes a test binary that calls
// RunRole from its TestMain act as a helper on a host instead of running
// tests: "dial" (exit 0 when CXBED_ADDR accepts a TCP connection within a
// second, 1 when not) or "client" (RunClient with the JSON config in
// CXBED_CLIENT).
const EnvRole = "CXBED_ROLE"

// RunRole runs the helper role of this process, if it has one, and returns
// its exit code and true; false when the process is no helper.
func RunRole() (int, bool) {
	switch os.Getenv(EnvRole) {
	case "":
		return 0, false
	case "dial":
		conn, err := net.DialTimeout("tcp", os.Getenv("CXBED_ADDR"), time.Second)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1, true
		}
		conn.Close()
		return 0, true
	case "proxy":
		if err := RunProxy(os.Getenv("CXBED_PROXY_IP"), os.Getenv("CXBED_PROXY_DELAY")); err != nil {
			fmt.Fprintln(os.Stderr, "proxy:", err)
			return 1, true
		}
		return 0, true
	case "client":
		if err := RunClient(os.Getenv("CXBED_CLIENT")); err != nil {
			fmt.Fprintln(os.Stderr, "client:", err)
			return 1, true
		}
		return 0, true
	default:
		fmt.Fprintf(os.Stderr, "%s=%q: want dial, proxy or client\n", EnvRole, os.Getenv(EnvRole))
		return 2, true
	}
}

// CanDial reports whether addr accepts a TCP connection from host h,
// trying from inside h's namespace with this binary as the "dial" helper.
func (h *Host) CanDial(addr string) bool {
	self, err := os.Executable()
	if err != nil {
		return false
	}
	cmd := exec.Command("ip", "netns", "exec", h.NS, self)
	cmd.Env = append(os.Environ(), EnvRole+"=dial", "CXBED_ADDR="+addr)
	return cmd.Run() == nil
}
