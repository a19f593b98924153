package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// nginxProxy is one nginx (master and workers, one process group) proxying
// every call to the greeter's endpoint.
type nginxProxy struct {
	p       *proc
	workers string // worker_processes as configured: "1" or "auto"
	addr    string // host:port it listens on
	dir     string
}

const nginxConf = `# coexist gateway benchmark: nginx as a plain reverse proxy in front of
# one greeter, tuned as one would for a keep-alive proxy on loopback.
daemon off;
master_process on;
worker_processes %s;
%spid %s/nginx.pid;
error_log %s/error.log warn;
worker_rlimit_nofile 65536;

events {
    worker_connections 8192;
    multi_accept on;
}

http {
    access_log off;
    client_body_temp_path %s/client_body;
    proxy_temp_path %s/proxy;
    fastcgi_temp_path %s/fastcgi;
    uwsgi_temp_path %s/uwsgi;
    scgi_temp_path %s/scgi;
    # wrk and the Go load generator keep their connections: do not close
    # one every 1000 calls (nginx's default), as the Go gateway does not.
    keepalive_requests 10000000;
    keepalive_timeout 75s;

    upstream greeter {
        server %s;
        keepalive 64;
        keepalive_requests 10000000;
    }

    server {
        listen %s backlog=4096;
        location / {
            proxy_pass http://greeter;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # The same call reaches the greeter as through the gateway: the
            # caller's Host and the X-Forwarded headers of Go's
            # ReverseProxy.SetXForwarded, which the gateway sets too.
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
            # And the same answer reaches the caller.
            add_header Coexist-Served-By "%s" always;
        }
    }
}
`

func startNginx(ctx context.Context, o *options, dir, workers, upstream, servedBy string) (*nginxProxy, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		n, err := tryStartNginx(ctx, o, filepath.Join(dir, fmt.Sprintf("nginx-%s-%d", workers, attempt)), workers, upstream, servedBy)
		if err == nil {
			return n, nil
		}
		lastErr = err
		if n != nil && n.p != nil {
			n.p.stop(5 * time.Second)
		}
		if !errors.Is(err, errPortConflict) || ctx.Err() != nil {
			break
		}
		fmt.Fprintln(os.Stderr, "nginx: a port was taken, retrying with another")
	}
	return nil, lastErr
}

func tryStartNginx(ctx context.Context, o *options, dir, workers, upstream, servedBy string) (*nginxProxy, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	n := &nginxProxy{workers: workers, addr: fmt.Sprintf("127.0.0.1:%d", ports[0]), dir: dir}
	user := ""
	if os.Geteuid() == 0 {
		// Root's workers would otherwise run as nobody, which may not read
		// the temp dir.
		user = "user root;\n"
	}
	conf := fmt.Sprintf(nginxConf, workers, user, dir, dir, dir, dir, dir, dir, dir, upstream, n.addr, servedBy)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	// -e: the error log before the configuration is read (nginx >= 1.19.5),
	// so that nothing is written under /var/log.
	n.p, err = startProc("nginx ("+workers+")", filepath.Join(dir, "nginx.out"), nil, o.nginxBin,
		"-p", dir, "-c", confPath, "-e", filepath.Join(dir, "error.log"))
	if err != nil {
		return n, err
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if !n.p.alive() {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			if strings.Contains(string(b), "Address already in use") {
				return n, fmt.Errorf("%w: nginx: %s", errPortConflict, strings.TrimSpace(string(b)))
			}
			return n, fmt.Errorf("nginx exited (%v): %s\n%s", n.p.err, strings.TrimSpace(string(b)), tail(n.p.logPath, 10))
		}
		c, err := net.DialTimeout("tcp", n.addr, time.Second)
		if err == nil {
			c.Close()
			return n, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return n, fmt.Errorf("nginx not listening on %s after 15s: %v", n.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// workerPIDs counts nginx's worker processes (its process group less the
// master).
func (n *nginxProxy) workerCount() int {
	c := 0
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid == n.p.pid() {
			continue
		}
		f := statFields(pid)
		if f != nil && f[2] == fmt.Sprint(n.p.pid()) {
			c++
		}
	}
	return c
}
