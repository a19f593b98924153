// Command greeter is a small versioned HTTP service, used by the tests and
// the demo to show several versions of one service running side by side.
//
// Its reply changes incompatibly between major versions, so that a client
// routed to the wrong major version would notice:
//
//	GET /greeter/hello?name=X   major 1:  text/plain "hello, X (greeter 1.x.y)"
//	                            major 2+: application/json
//	                                      {"greeting":"hello","name":"X","version":"2.x.y"}
//	GET /greeter/hello?...&delay=2s   waits that long first (a long call, for drain tests)
//	GET /healthz                      200 "ok"
//
// Every answer carries the header Greeter-Version.
//
// Configuration:
//
//	--version or GREETER_VERSION   the version it claims (default 1.0.0)
//	PORT                           required; it listens on 127.0.0.1:$PORT
//	GREETER_FAIL_HEALTH=1          /healthz answers 500 (a version that never gets healthy)
//	GREETER_CRASH_AFTER=<duration> exit with status 3 after that long (a crash)
//
// On SIGTERM it stops accepting connections and lets the calls in flight
// finish, for up to 30 seconds.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	defaultVersion = "1.0.0"
	// shutdownTimeout bounds how long calls in flight may run on after SIGTERM.
	shutdownTimeout = 30 * time.Second
	// maxDelay bounds ?delay=, so that a typo cannot hold a call for hours.
	maxDelay = 10 * time.Minute
	// crashStatus is the exit status of GREETER_CRASH_AFTER.
	crashStatus = 3
)

func main() {
	if err := run(os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "greeter:", err)
		os.Exit(1)
	}
}

// config is what the greeter is told at start.
type config struct {
	Version    string
	Major      int
	Addr       string
	FailHealth bool
	CrashAfter time.Duration
}

// parseConfig reads flags and environment; getenv is os.Getenv outside tests.
func parseConfig(args []string, getenv func(string) string) (config, error) {
	fs := flag.NewFlagSet("greeter", flag.ContinueOnError)
	version := fs.String("version", "", "version this greeter claims (default $GREETER_VERSION, else "+defaultVersion+")")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	c := config{Version: *version}
	if c.Version == "" {
		c.Version = getenv("GREETER_VERSION")
	}
	if c.Version == "" {
		c.Version = defaultVersion
	}
	c.Version = strings.TrimPrefix(c.Version, "v")
	major, err := majorOf(c.Version)
	if err != nil {
		return config{}, err
	}
	c.Major = major

	port := getenv("PORT")
	if port == "" {
		return config{}, errors.New("PORT is not set: the coexist agent sets it; by hand, run e.g. PORT=8080 greeter")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return config{}, fmt.Errorf("PORT %q is not a port number", port)
	}
	c.Addr = net.JoinHostPort("127.0.0.1", port) // containers listen on loopback only

	c.FailHealth = getenv("GREETER_FAIL_HEALTH") == "1"
	if s := getenv("GREETER_CRASH_AFTER"); s != "" {
		if c.CrashAfter, err = time.ParseDuration(s); err != nil || c.CrashAfter <= 0 {
			return config{}, fmt.Errorf("GREETER_CRASH_AFTER %q: want a positive duration such as 5s", s)
		}
	}
	return c, nil
}

// majorOf returns the major number of a version "MAJOR.MINOR.PATCH".
func majorOf(v string) (int, error) {
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return 0, fmt.Errorf("version %q: want MAJOR.MINOR.PATCH", v)
	}
	for _, p := range parts {
		if _, err := strconv.Atoi(p); err != nil {
			return 0, fmt.Errorf("version %q: want MAJOR.MINOR.PATCH", v)
		}
	}
	return strconv.Atoi(parts[0])
}

// run serves until SIGTERM or SIGINT, then shuts down gracefully.
func run(args []string, getenv func(string) string, stdout io.Writer) error {
	c, err := parseConfig(args, getenv)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: newHandler(c), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "greeter %s listening on %s\n", c.Version, l.Addr())

	if c.CrashAfter > 0 {
		time.AfterFunc(c.CrashAfter, func() {
			fmt.Fprintf(os.Stderr, "greeter %s: crashing on purpose after %s (GREETER_CRASH_AFTER)\n", c.Version, c.CrashAfter)
			os.Exit(crashStatus)
		})
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	fmt.Fprintf(stdout, "greeter %s shutting down\n", c.Version)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	// Shutdown stops accepting, then waits for the calls in flight; their
	// contexts are not cancelled, so a delayed call still gets its answer.
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// newHandler returns the greeter's routes.
func newHandler(c config) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if c.FailHealth {
			http.Error(w, "unhealthy (GREETER_FAIL_HEALTH=1)", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("GET /greeter/hello", func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("name")
		if name == "" {
			name = "world"
		}
		if s := r.URL.Query().Get("delay"); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d < 0 || d > maxDelay {
				http.Error(w, fmt.Sprintf("delay %q: want a duration between 0 and %s", s, maxDelay), http.StatusBadRequest)
				return
			}
			select {
			case <-time.After(d):
			case <-r.Context().Done(): // the caller went away: no one to answer
				return
			}
		}
		if c.Major < 2 {
			// The 1.x protocol: plain text.
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintf(w, "hello, %s (greeter %s)\n", name, c.Version)
			return
		}
		// From 2.0 on: JSON. A 1.x client reading this as text breaks,
		// which is why the router must never send it here.
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(struct {
			Greeting string `json:"greeting"`
			Name     string `json:"name"`
			Version  string `json:"version"`
		}{"hello", name, c.Version})
	})
	return withVersion(c.Version, mux)
}

// withVersion sets Greeter-Version on every answer, errors included.
func withVersion(version string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Greeter-Version", version)
		next.ServeHTTP(w, r)
	})
}
