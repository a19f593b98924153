package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary act as the container process (and as an
// agent, for the test where the agent process really dies): when
// DRIVER_TEST_CHILD names a mode, it runs that mode instead of the tests.
//
// Modes:
//
//	serve  HTTP on 127.0.0.1:$PORT: "/" answers "ok pid=<pid>", "/env" the
//	       environment as JSON, "/exit?code=N" exits with N. Exits 0 on
//	       SIGTERM. Options (env): DRIVER_TEST_IGNORE_TERM=1 ignores SIGTERM;
//	       DRIVER_TEST_GRANDCHILD=1 first starts a grandchild ("sleep") in
//	       its process group and prints "grandchild <pid>";
//	       DRIVER_TEST_SPAM=<bytes> first writes that many bytes of numbered
//	       lines to stdout and to stderr, then "spam-end". Prints "ready"
//	       once all that is done and it listens.
//	sleep  blocks until killed.
//	exit   prints DRIVER_TEST_LINES lines "out N" to stdout and "err N" to
//	       stderr, then exits with DRIVER_TEST_CODE.
//	agent  creates an Exec on DRIVER_TEST_DATADIR (ports DRIVER_TEST_PORTS
//	       "min-max"), starts a "serve" container "orphan", prints its
//	       Handle as JSON and exits without stopping it.
func TestMain(m *testing.M) {
	if mode := os.Getenv("DRIVER_TEST_CHILD"); mode != "" {
		os.Exit(runChild(mode))
	}
	os.Exit(m.Run())
}

func runChild(mode string) int {
	switch mode {
	case "serve":
		return childServe()
	case "sleep":
		select {}
	case "exit":
		n, _ := strconv.Atoi(os.Getenv("DRIVER_TEST_LINES"))
		for i := 1; i <= n; i++ {
			fmt.Fprintf(os.Stdout, "out %d\n", i)
			fmt.Fprintf(os.Stderr, "err %d\n", i)
		}
		code, _ := strconv.Atoi(os.Getenv("DRIVER_TEST_CODE"))
		return code
	case "agent":
		return childAgent()
	}
	fmt.Fprintf(os.Stderr, "unknown DRIVER_TEST_CHILD mode %q\n", mode)
	return 2
}

func childServe() int {
	if os.Getenv("DRIVER_TEST_IGNORE_TERM") == "1" {
		signal.Ignore(syscall.SIGTERM)
	}
	term := make(chan os.Signal, 1)
	if os.Getenv("DRIVER_TEST_IGNORE_TERM") != "1" {
		signal.Notify(term, syscall.SIGTERM)
	}
	if os.Getenv("DRIVER_TEST_GRANDCHILD") == "1" {
		self, _ := os.Executable()
		gc := exec.Command(self)
		gc.Env = append(os.Environ(), "DRIVER_TEST_CHILD=sleep")
		if err := gc.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "start grandchild:", err)
			return 1
		}
		fmt.Printf("grandchild %d\n", gc.Process.Pid)
	}
	if n, _ := strconv.Atoi(os.Getenv("DRIVER_TEST_SPAM")); n > 0 {
		for _, w := range []*os.File{os.Stdout, os.Stderr} {
			for i := 0; i < n; {
				k, _ := fmt.Fprintf(w, "spam line %08d %s\n", i, strings.Repeat("x", 40))
				i += k
			}
			fmt.Fprintln(w, "spam-end")
		}
	}
	port := os.Getenv("PORT")
	l, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		return 1
	}
	exitCode := make(chan int, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "ok pid=%d", os.Getpid())
	})
	mux.HandleFunc("GET /env", func(w http.ResponseWriter, r *http.Request) {
		env := map[string]string{}
		for _, kv := range os.Environ() {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		_ = json.NewEncoder(w).Encode(env)
	})
	mux.HandleFunc("GET /exit", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		fmt.Fprintln(w, "exiting")
		exitCode <- code
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	fmt.Printf("serving on %s\nready\n", l.Addr())
	select {
	case <-term:
		fmt.Println("got SIGTERM")
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		return 0
	case code := <-exitCode:
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx) // lets the /exit answer go out first
		return code
	}
}

func childAgent() int {
	var min, max int
	if _, err := fmt.Sscanf(os.Getenv("DRIVER_TEST_PORTS"), "%d-%d", &min, &max); err != nil {
		fmt.Fprintln(os.Stderr, "DRIVER_TEST_PORTS:", err)
		return 1
	}
	e, err := NewExec(ExecConfig{DataDir: os.Getenv("DRIVER_TEST_DATADIR"), PortMin: min, PortMax: max})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	self, _ := os.Executable()
	h, err := e.Start(context.Background(), Spec{
		ID: "orphan", Command: self, Env: map[string]string{"DRIVER_TEST_CHILD": "serve"},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := json.NewEncoder(os.Stdout).Encode(h); err != nil {
		return 1
	}
	return 0 // the agent dies here, leaving its container running
}

// isUnknownExit reports whether r is the exit of a re-adopted process.
func isUnknownExit(r ExitResult) bool {
	return r.ExitCode == -1 && errors.Is(r.Err, ErrExitUnknown)
}
