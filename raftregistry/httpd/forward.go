package httpd

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"
)

// HeaderForwarded marks a request a follower forwarded to the leader. A
// server that is not the leader answers such a request with 503 rather than
// forward it again, so that two servers with different ideas of the leader
// cannot bounce a request between them.
const HeaderForwarded = "X-Coexist-Forwarded"

type forwardTarget struct{}

// newProxy builds the reverse proxy to the leader. It has no overall or
// response-header timeout: a forwarded blocking query is answered only when
// its wait ends.
func (s *Server) newProxy(serverTLS *tls.Config) *httputil.ReverseProxy {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = 10 * time.Second
	// Agents and SDKs hold many blocking queries open at once.
	tr.MaxIdleConnsPerHost = 64
	if serverTLS != nil {
		c := serverTLS.Clone()
		if c.RootCAs == nil && c.ClientCAs != nil {
			// The servers' certificates come from the CA that signs clients.
			c.RootCAs = c.ClientCAs
		}
		tr.TLSClientConfig = c
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(pr.In.Context().Value(forwardTarget{}).(*url.URL))
			pr.SetXForwarded()
			pr.Out.Header.Set(HeaderForwarded, "1")
		},
		Transport: tr,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, context.Canceled) {
				// The caller went away; nobody reads the answer.
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			target := r.Context().Value(forwardTarget{}).(*url.URL)
			s.writeError(w, r, httpErrorf(http.StatusServiceUnavailable, "forward to the leader at %s: %v", target.Host, err))
		},
	}
}

// forward sends the request, whose body has not been read, to the leader and
// copies its answer back.
func (s *Server) forward(w http.ResponseWriter, r *http.Request) error {
	if r.Header.Get(HeaderForwarded) != "" {
		return httpErrorf(http.StatusServiceUnavailable,
			"not the leader, and the request was already forwarded once: leadership is changing; retry")
	}
	leader, ok := s.store.Leader()
	if !ok || leader.HTTPAddr == "" {
		return httpErrorf(http.StatusServiceUnavailable,
			"no leader known (or its HTTP address is not recorded yet): the cluster may be electing one; retry")
	}
	target, err := s.leaderURL(leader.HTTPAddr)
	if err != nil {
		return err
	}
	s.logger.Debug("forwarding to the leader", "method", r.Method, "path", r.URL.Path, "leader", leader.ID)
	s.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), forwardTarget{}, target)))
	return nil
}

// leaderURL turns a leader's advertised HTTP address, a URL or host:port,
// into the base URL to forward to. The scheme is always this server's own, so
// that a token never leaves a TLS server in the clear.
func (s *Server) leaderURL(addr string) (*url.URL, error) {
	host := addr
	if strings.Contains(addr, "://") {
		u, err := url.Parse(addr)
		if err != nil || u.Host == "" {
			return nil, httpErrorf(http.StatusServiceUnavailable, "leader's HTTP address %q is not a URL nor host:port", addr)
		}
		host = u.Host
	}
	return &url.URL{Scheme: s.scheme, Host: host}, nil
}
