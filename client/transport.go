package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/client/callpolicy"
	"github.com/coexist-dev/coexist/routing"
)

// transport is the RoundTripper of a Client.
type transport struct{ c *Client }

// RoundTrip routes one call. The service is the request's host, without its
// port; the request goes, as /{service}/path, to the gateway of the node
// holding the container chosen by routing.Select on the current table, with
// Coexist-Client, Coexist-Client-Version and Coexist-Container set (and
// Coexist-Client-Require when the client constrains the service). The
// caller's request is not modified.
//
// The call is sent again, on a fresh choice that avoids the containers that
// refused it, only when it never reached a service: the gateway answered 503
// with Coexist-Retry: safe, or no connection to the gateway was made. Retries
// back off from 5ms with jitter (package callpolicy holds the rule) and stop at the request's deadline, or after
// Config.RetryTimeout when it has none; a request with a body is retried only
// when it has GetBody (http.NewRequest sets it for in-memory bodies). When
// retries run out, the last refusal is the answer, or the last error.
//
// When no version serves the client, RoundTrip returns a
// *routing.NoCompatibleError (errors.Is(err, ErrNoCompatibleVersion)) without
// any network call.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	c := t.c
	start := time.Now()
	if c.closed.Load() {
		closeRequestBody(req)
		return nil, ErrClosed
	}
	if req.URL == nil {
		closeRequestBody(req)
		return nil, errors.New("client: request has no URL")
	}
	if s := req.URL.Scheme; s != "http" && s != "" {
		closeRequestBody(req)
		return nil, fmt.Errorf("client: scheme %q not supported: call http://{service}/path", s)
	}
	service := serviceOf(req.URL.Host)
	if service == "" {
		closeRequestBody(req)
		return nil, errors.New("client: the request names no service: call http://{service}/path")
	}

	ctx := req.Context()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = start.Add(c.cfg.RetryTimeout)
	}
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	var policy callpolicy.Call
	for attempt := 0; ; attempt++ {
		st, route, err := c.choose(service)
		if err != nil {
			if attempt == 0 {
				closeRequestBody(req)
			}
			c.count(st, service, "", start, true)
			return nil, err
		}
		tgt := policy.Pick(&route)
		var resp *http.Response
		var outcome callpolicy.Outcome
		if tgt.Gateway == "" {
			// Nothing to connect to: as good as a connection never made.
			err = fmt.Errorf("client: container %q of %s@%s: node %q has no gateway address", tgt.ID, service, route.Version, tgt.Node)
			outcome = callpolicy.NeverConnected
			if attempt == 0 {
				// Not handed to a transport, which would have closed it;
				// a retry sends GetBody's.
				closeRequestBody(req)
			}
		} else {
			out, oerr := c.outgoing(req, st, service, &tgt, attempt)
			if oerr != nil {
				c.count(st, service, route.Version, start, true)
				return nil, oerr
			}
			resp, err = c.base.RoundTrip(out)
			outcome = callpolicy.Classify(resp, err)
		}
		pause, again := policy.Retry(outcome, replayable, time.Now(), deadline, c.cfg.Rand)
		if !again || ctx.Err() != nil {
			failed := err != nil || resp.StatusCode >= 500
			version := route.Version
			if err == nil {
				if v := resp.Header[api.HeaderServedBy]; len(v) > 0 {
					if sb, perr := api.ParseServedBy(v[0]); perr == nil {
						version = sb.Version
					}
				}
			}
			c.count(st, service, version, start, failed)
			if resp != nil {
				// The caller's request, not the attempt's: redirects resolve
				// against http://{service}/, not the gateway.
				resp.Request = req
			}
			return resp, err
		}
		if resp != nil {
			drain(resp)
		}
		c.metrics.of(known(st, service), route.Version).retries.Inc()
		c.logger.Trace("call retried", "service", service, "version", route.Version, "container", tgt.ID, "attempt", attempt+1, "outcome", outcome, "error", err)
		if !sleep(ctx, pause) {
			c.count(st, service, route.Version, start, true)
			if err == nil {
				err = fmt.Errorf("call to %s refused as safe to retry by container %q; retrying", service, tgt.ID)
			}
			return nil, fmt.Errorf("%w: %w", ctx.Err(), err)
		}
	}
}

// count records the end of a call.
func (c *Client) count(st *tableState, service, version string, start time.Time, failed bool) {
	vm := c.metrics.of(known(st, service), version)
	vm.calls.Inc()
	if failed {
		vm.failures.Inc()
	}
	vm.duration.Observe(time.Since(start).Seconds())
}

// known returns service when the table knows it, and "" otherwise, so that
// metric labels stay bounded.
func known(st *tableState, service string) string {
	if _, ok := st.services[service]; ok {
		return service
	}
	return ""
}

// outgoing builds the request of one attempt: a shallow copy of the caller's
// with its own URL and headers.
func (c *Client) outgoing(req *http.Request, st *tableState, service string, tgt *routing.Target, attempt int) (*http.Request, error) {
	out := new(http.Request)
	*out = *req
	u := *req.URL
	u.Scheme = "http"
	u.Host = tgt.Gateway
	// By path, so that the gateway never mistakes the first segment of the
	// caller's path for a service.
	u.Path = "/" + service + req.URL.Path
	if req.URL.RawPath != "" {
		u.RawPath = "/" + service + req.URL.RawPath
	}
	out.URL = &u
	if out.Host == "" {
		out.Host = req.URL.Host
	}
	h := make(http.Header, len(req.Header)+4)
	for k, v := range req.Header {
		h[k] = v
	}
	// The SDK is where a call starts: it has made no hop.
	delete(h, api.HeaderHops)
	h[api.HeaderClient] = c.hdrClient
	h[api.HeaderClientVersion] = c.hdrVersion
	if v, ok := st.container[tgt.ID]; ok {
		h[api.HeaderContainer] = v
	} else {
		h[api.HeaderContainer] = []string{tgt.ID}
	}
	if v, ok := c.hdrRequire[service]; ok {
		h[HeaderClientRequire] = v
	} else {
		delete(h, HeaderClientRequire)
	}
	out.Header = h
	if attempt > 0 && req.Body != nil && req.Body != http.NoBody {
		body, err := req.GetBody()
		if err != nil {
			return nil, fmt.Errorf("client: get the request body again for a retry: %w", err)
		}
		out.Body = body
	}
	return out, nil
}

// serviceOf returns the service a request's host names: the host without
// its port, in lower case.
func serviceOf(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	for i := 0; i < len(host); i++ {
		if 'A' <= host[i] && host[i] <= 'Z' {
			return strings.ToLower(host)
		}
	}
	return host
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// drain reads what is left of a refusal, a small JSON error, so that its
// connection is reused, and closes it.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
}

func closeRequestBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}
