// Command ociprobe is the oci driver tests' container: a static HTTP server
// on 127.0.0.1:$PORT that reports what it can see and do from inside.
//
//	GET /health        200 "ok"
//	GET /procs         the pids it sees in /proc, as JSON
//	GET /write?path=P  writes P: 200, or 500 with the error
//	GET /alloc?mib=N   allocates and touches N MiB, and keeps them
//	GET /exit?code=N   exits with N
//
// It exits 0 on SIGTERM.
package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
)

var kept [][]byte

func main() {
	l, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv("PORT"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	mux.HandleFunc("GET /procs", func(w http.ResponseWriter, r *http.Request) {
		ents, err := os.ReadDir("/proc")
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		var pids []int
		for _, e := range ents {
			if n, err := strconv.Atoi(e.Name()); err == nil {
				pids = append(pids, n)
			}
		}
		_ = json.NewEncoder(w).Encode(pids)
	})
	mux.HandleFunc("GET /write", func(w http.ResponseWriter, r *http.Request) {
		if err := os.WriteFile(r.URL.Query().Get("path"), []byte("x"), 0o644); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprint(w, "ok")
	})
	mux.HandleFunc("GET /alloc", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("mib"))
		for range n {
			b := make([]byte, 1<<20)
			for i := range b {
				b[i] = 1
			}
			kept = append(kept, b)
		}
		fmt.Fprintf(w, "allocated %d MiB", n)
	})
	mux.HandleFunc("GET /exit", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		os.Exit(code)
	})
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	go func() {
		<-term
		fmt.Println("got SIGTERM")
		os.Exit(0)
	}()
	fmt.Println("ready")
	_ = http.Serve(l, mux)
}
