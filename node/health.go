package node

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/coexist-dev/coexist/api"
)

// checkHealth runs one health check of a container at endpoint: an HTTP GET
// of the declared path that must answer 2xx, or a TCP connect when the check
// declares no path (or there is no check at all).
func checkHealth(ctx context.Context, client *http.Client, endpoint string, h *api.HealthCheck) error {
	timeout := time.Second
	if h != nil && h.Timeout > 0 {
		timeout = h.Timeout.Std()
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if h == nil || h.HTTP == "" {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", endpoint)
		if err != nil {
			return fmt.Errorf("tcp check: %w", err)
		}
		return conn.Close()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+endpoint+h.HTTP, nil)
	if err != nil {
		return fmt.Errorf("http check: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("http check: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("http check: GET %s answered %s", h.HTTP, resp.Status)
	}
	return nil
}

// healthInterval is how often a container is checked once it has passed;
// until its first pass it is checked as startWait says, so that it becomes
// routable as soon as it listens.
func healthInterval(h *api.HealthCheck) time.Duration {
	if h != nil && h.Interval > 0 {
		return h.Interval.Std()
	}
	return time.Second
}

// startWait is how long a container's checker waits before its next check
// while the container has never passed, elapsed after its start: none
// before the first check, then fastPoll for the first fastPollFor (most
// services listen within it: a fixed fast poll, not a backoff, so that one
// that listens at 20 ms is not found only at 25), then startPoll.
func startWait(checks int, elapsed time.Duration) time.Duration {
	switch {
	case checks == 0:
		return 0
	case elapsed < fastPollFor:
		return fastPoll
	}
	return startPoll
}

const (
	fastPoll    = 2 * time.Millisecond
	fastPollFor = 200 * time.Millisecond
	startPoll   = 10 * time.Millisecond
	// unhealthyAfter consecutive failed checks take a container that once
	// passed out of the routes until it passes again.
	unhealthyAfter = 3
)
