package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultAddress is the registry address used when none is configured.
const DefaultAddress = "http://127.0.0.1:7700"

// DefaultRefreshServers is how often agents and SDK clients learn the
// registry's servers again (Config.RefreshServers).
const DefaultRefreshServers = 30 * time.Second

// Environment variables read by DefaultConfig.
const (
	EnvAddress    = "COEXIST_ADDR"
	EnvToken      = "COEXIST_TOKEN"
	EnvCACert     = "COEXIST_CACERT"
	EnvClientCert = "COEXIST_CLIENT_CERT"
	EnvClientKey  = "COEXIST_CLIENT_KEY"
)

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

// Config configures a Client.
type Config struct {
	// Address is the registry's URL, http:// or https://, e.g.
	// "http://127.0.0.1:7700", or the URLs of several of its servers
	// separated by commas. Empty means DefaultAddress. A Client that knows
	// several servers sends a request to the next one when its server does
	// not answer, or answers 502, 503 or 504, when the request may be sent
	// twice (reads, and writes other than POST and check-and-set; after no
	// answer at all, only reads and heartbeats: see mayTryElsewhere).
	Address string
	// RefreshServers, when positive, makes the Client learn the registry's
	// other servers from GET /v1/status/peers after its first answer and
	// then every RefreshServers, so that it can fail over to servers it was
	// not given. Agents and the SDK use DefaultRefreshServers. Zero keeps to
	// the servers of Address.
	RefreshServers time.Duration
	// Token is sent as "Authorization: Bearer <token>" when not empty.
	Token string
	// HTTPClient, when set, is used instead of the default one. When TLS is
	// also set, a copy of it is made whose *http.Transport carries the TLS
	// settings.
	HTTPClient *http.Client
	// TLS configures https:// addresses.
	TLS TLSConfig
}

// TLSConfig holds the TLS settings of a Client. Empty fields keep Go's
// defaults (the system roots, no client certificate).
type TLSConfig struct {
	// CAFile is a PEM file of the CA certificates that sign the registry's.
	CAFile string
	// CertFile and KeyFile are the PEM client certificate and its key, given
	// together.
	CertFile string
	KeyFile  string
	// ServerName overrides the name checked in the registry's certificate.
	ServerName string
	// Insecure skips verification of the registry's certificate.
	Insecure bool
}

func (t TLSConfig) empty() bool { return t == TLSConfig{} }

// DefaultConfig returns a Config from the environment: COEXIST_ADDR (one URL
// or several separated by commas; default DefaultAddress), COEXIST_TOKEN, COEXIST_CACERT, COEXIST_CLIENT_CERT and
// COEXIST_CLIENT_KEY.
func DefaultConfig() *Config {
	cfg := &Config{
		Address: DefaultAddress,
		Token:   os.Getenv(EnvToken),
		TLS: TLSConfig{
			CAFile:   os.Getenv(EnvCACert),
			CertFile: os.Getenv(EnvClientCert),
			KeyFile:  os.Getenv(EnvClientKey),
		},
	}
	if addr := os.Getenv(EnvAddress); addr != "" {
		cfg.Address = addr
	}
	return cfg
}

// QueryOptions are the parameters of a read.
type QueryOptions struct {
	// AllowStale lets any server answer, however far behind the leader
	// (QueryMeta says how far).
	AllowStale bool
	// RequireConsistent makes the leader verify its leadership first.
	RequireConsistent bool
	// WaitIndex makes the read blocking: it returns once the result's index
	// passes WaitIndex, or when WaitTime ends.
	WaitIndex uint64
	// WaitTime bounds a blocking read; zero means the server's default.
	WaitTime time.Duration
	// AuthToken overrides the Client's token for this request.
	AuthToken string
	// Identity, when set, says who asks: an agent's or SDK client's watch
	// carries it so that the registry counts it in its census, and its
	// WaitIndex acknowledges the table up to that index (docs/design.md §5).
	Identity *Identity
}

// WriteOptions are the parameters of a write.
type WriteOptions struct {
	// CAS, when set, makes the write check-and-set: it succeeds only when the
	// record's modify index equals *CAS; a pointer to 0 means create-only. A
	// failed check answers 409 (see IsConflict).
	CAS *uint64
	// Force makes a write that the registry refuses by default to protect
	// running calls go ahead anyway (?force=true): purging a node that is
	// still ready, retiring or narrowing a version that live clients still
	// need.
	Force bool
	// AuthToken overrides the Client's token for this request.
	AuthToken string
}

// CAS returns a pointer to index, for WriteOptions.CAS.
func CAS(index uint64) *uint64 { return &index }

// QueryMeta is what the registry says about a read.
type QueryMeta struct {
	// LastIndex is the index of the result; pass it as WaitIndex to block
	// until the result changes.
	LastIndex uint64
	// LastContact is how long ago the answering server last heard from the
	// leader (0 on the leader).
	LastContact time.Duration
	// KnownLeader says whether the answering server knew of a leader.
	KnownLeader bool
	// RequestTime is how long the request took, up to the response headers.
	RequestTime time.Duration
}

// WriteMeta is what the registry says about a write.
type WriteMeta struct {
	// LastIndex is the Raft index at which the write was applied.
	LastIndex uint64
	// RequestTime is how long the request took, up to the response headers.
	RequestTime time.Duration
}

// Client is a client of the registry HTTP API. It is safe for concurrent use.
type Client struct {
	servers *servers
	http    *http.Client
	token   atomic.Pointer[string]
}

// NewClient returns a Client for cfg; a nil cfg means DefaultConfig().
func NewClient(cfg *Config) (*Client, error) {
	if cfg == nil {
		cfg = DefaultConfig()
	}
	given, err := parseAddresses(cfg.Address)
	if err != nil {
		return nil, err
	}
	hc, err := httpClient(cfg)
	if err != nil {
		return nil, err
	}
	c := &Client{servers: newServers(given, cfg.RefreshServers), http: hc}
	c.SetToken(cfg.Token)
	return c, nil
}

// parseAddress checks that addr is an http:// or https:// URL with a host and
// returns it without a trailing slash.
func parseAddress(addr string) (*url.URL, error) {
	if addr == "" {
		addr = DefaultAddress
	}
	u, err := url.Parse(addr)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("invalid registry address %q: must be an http:// or https:// URL, e.g. %s", addr, DefaultAddress)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("invalid registry address %q: must not carry a query, a fragment or user info", addr)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = strings.TrimRight(u.RawPath, "/")
	return u, nil
}

// httpClient builds the http.Client of cfg. The default one has no overall
// timeout, since a blocking query lasts as long as its wait, but it does bound
// dialing and the TLS handshake.
func httpClient(cfg *Config) (*http.Client, error) {
	if cfg.HTTPClient != nil && cfg.TLS.empty() {
		return cfg.HTTPClient, nil
	}
	var tlsConf *tls.Config
	if !cfg.TLS.empty() {
		var err error
		if tlsConf, err = buildTLS(cfg.TLS); err != nil {
			return nil, err
		}
	}
	if cfg.HTTPClient != nil {
		hc := *cfg.HTTPClient
		var tr *http.Transport
		switch t := hc.Transport.(type) {
		case nil:
			tr = defaultTransport()
		case *http.Transport:
			tr = t.Clone()
		default:
			return nil, fmt.Errorf("TLS settings need an *http.Transport in Config.HTTPClient, have %T", t)
		}
		tr.TLSClientConfig = tlsConf
		hc.Transport = tr
		return &hc, nil
	}
	tr := defaultTransport()
	if tlsConf != nil {
		tr.TLSClientConfig = tlsConf
	}
	return &http.Client{Transport: tr}, nil
}

func defaultTransport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	tr.DialContext = dialer.DialContext
	tr.TLSHandshakeTimeout = 10 * time.Second
	// Agents and SDKs hold many blocking queries open at once to one host.
	tr.MaxIdleConns = 256
	tr.MaxIdleConnsPerHost = 64
	return tr
}

func buildTLS(t TLSConfig) (*tls.Config, error) {
	conf := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.Insecure, //nolint:gosec // the operator asked for it
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file %s: %w", t.CAFile, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read CA file %s: no PEM certificate found", t.CAFile)
		}
		conf.RootCAs = pool
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, errors.New("TLS client certificate and key must be given together")
	}
	if t.CertFile != "" {
		if _, err := os.Stat(t.CertFile); err != nil {
			return nil, fmt.Errorf("read client certificate %s: %w", t.CertFile, err)
		}
		if _, err := os.Stat(t.KeyFile); err != nil {
			return nil, fmt.Errorf("read client key %s: %w", t.KeyFile, err)
		}
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate %s and key %s: %w", t.CertFile, t.KeyFile, err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}

// Address returns the URL of the registry server the Client sends its next
// request to.
func (c *Client) Address() string { return c.servers.current().String() }

// Servers returns the URLs of every registry server the Client knows: those
// it was given, then those it learned.
func (c *Client) Servers() []string { return c.servers.all() }

// Token returns the Client's ACL token.
func (c *Client) Token() string { return *c.token.Load() }

// SetToken changes the Client's ACL token for the requests that follow.
func (c *Client) SetToken(token string) { c.token.Store(&token) }

// request is one call to the registry.
type request struct {
	method string
	path   string // already escaped
	params url.Values
	flags  []string // bare query flags, e.g. "stale"
	token  string
	body   []byte    // sent again when the request goes to another server
	stream io.Reader // a body read once: never sent to a second server
	ctype  string
	ident  *Identity
}

func (c *Client) newRequest(method, path string) *request {
	return &request{method: method, path: path, params: url.Values{}}
}

func (r *request) setQuery(q *QueryOptions) {
	if q == nil {
		return
	}
	if q.WaitIndex != 0 {
		r.params.Set("index", strconv.FormatUint(q.WaitIndex, 10))
	}
	if q.WaitTime > 0 {
		r.params.Set("wait", q.WaitTime.String())
	}
	if q.AllowStale {
		r.flags = append(r.flags, "stale")
	}
	if q.RequireConsistent {
		r.flags = append(r.flags, "consistent")
	}
	r.token = q.AuthToken
	r.ident = q.Identity
}

func (r *request) setWrite(w *WriteOptions) {
	if w == nil {
		return
	}
	if w.CAS != nil {
		r.params.Set("cas", strconv.FormatUint(*w.CAS, 10))
	}
	if w.Force {
		r.params.Set("force", "true")
	}
	r.token = w.AuthToken
}

// setJSON makes v the body of r.
func (r *request) setJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	r.body = b
	r.ctype = "application/json"
	return nil
}

// do sends r and returns the response when it is 2xx, with the time it took.
// Any other answer is a *StatusError. The caller closes the body.
//
// With several servers known, r goes to the current one first and, when
// mayTryElsewhere allows, to each of the others in turn; each attempt of an
// idempotent request is bounded by attemptTimeout. A server that failed, or that
// answered without knowing a leader, stops being the current one.
func (c *Client) do(ctx context.Context, r *request) (*http.Response, time.Duration, error) {
	list, first := c.servers.snapshot()
	var (
		resp *http.Response
		took time.Duration
		err  error
	)
	for i := range len(list) {
		base := list[(first+i)%len(list)]
		left := len(list) - 1 - i
		// Only a request that may go to the next server after it reached
		// this one gains from a limit of its own.
		var limit time.Duration
		if len(list) > 1 && r.idempotent() && r.stream == nil {
			limit = c.attemptTimeout(ctx, r, left)
		}
		resp, took, err = c.attempt(ctx, base, r, limit)
		if err == nil {
			if len(list) > 1 && resp.Header.Get(HeaderKnownLeader) == "false" {
				c.servers.moveOn(base)
			}
			if c.servers.refreshDue(time.Now()) {
				go c.refreshServers()
			}
			return resp, took, nil
		}
		if ctx.Err() != nil || left == 0 || !r.mayTryElsewhere(err) {
			if left > 0 && (errors.Is(err, errNoAnswer) || neverConnected(err)) {
				// Not sent again, but the next request goes elsewhere.
				c.servers.moveOn(base)
			}
			break
		}
		c.servers.moveOn(base)
	}
	return nil, took, err
}

// attempt sends r to the server at base, within limit when it is not 0.
func (c *Client) attempt(ctx context.Context, base *url.URL, r *request, limit time.Duration) (*http.Response, time.Duration, error) {
	u := *base
	rawPath := base.EscapedPath() + r.path
	p, err := url.PathUnescape(rawPath)
	if err != nil {
		return nil, 0, fmt.Errorf("bad request path %q: %w", r.path, err)
	}
	u.Path, u.RawPath = p, rawPath
	u.RawQuery = r.params.Encode()
	for _, f := range r.flags {
		if u.RawQuery != "" {
			u.RawQuery += "&"
		}
		u.RawQuery += f
	}

	var body io.Reader
	switch {
	case r.stream != nil:
		body = r.stream
	case r.body != nil:
		body = bytes.NewReader(r.body)
	case r.method == http.MethodPut || r.method == http.MethodPost:
		body = http.NoBody
	}
	// The limit bounds the wait for the answer's head, not the reading of
	// its body (a snapshot may take longer).
	actx, cancel := context.WithCancel(ctx)
	stopTimer := func() bool { return true }
	if limit > 0 {
		stopTimer = time.AfterFunc(limit, cancel).Stop
	}
	req, err := http.NewRequestWithContext(actx, r.method, u.String(), body)
	if err != nil {
		stopTimer()
		cancel()
		return nil, 0, fmt.Errorf("%s %s: %w", r.method, r.path, err)
	}
	req.Header.Set("Accept", "application/json")
	if r.ctype != "" {
		req.Header.Set("Content-Type", r.ctype)
	}
	token := r.token
	if token == "" {
		token = c.Token()
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if r.ident != nil {
		r.ident.setHeaders(req.Header)
	}

	start := time.Now()
	resp, err := c.http.Do(req)
	took := time.Since(start)
	timedOut := !stopTimer()
	if timedOut && err == nil {
		// The head came as the limit passed: the context is gone, so is
		// the body.
		_ = resp.Body.Close()
		err = context.Canceled
	}
	if err != nil {
		cancel()
		if timedOut && ctx.Err() == nil {
			return nil, took, fmt.Errorf("%s %s on %s: %w (%s)", r.method, r.path, base.Host, errNoAnswer, limit)
		}
		return nil, took, fmt.Errorf("%s %s: %w", r.method, r.path, err)
	}
	resp.Body = cancelOnClose{resp.Body, cancel}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer closeBody(resp)
		return nil, took, statusError(resp)
	}
	return resp, took, nil
}

// cancelOnClose ends an attempt's context when its answer's body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// statusError reads the error answer resp.
func statusError(resp *http.Response) error {
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	se := &StatusError{Code: resp.StatusCode}
	var er ErrorResponse
	if json.Unmarshal(raw, &er) == nil && er.Error != "" {
		se.Body = er.Error
	} else {
		se.Body = strings.TrimSpace(string(raw))
	}
	if se.Body == "" && err != nil {
		se.Body = "read error body: " + err.Error()
	}
	return se
}

// closeBody drains a little of the body so that the connection can be
// reused, then closes it.
func closeBody(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	_ = resp.Body.Close()
}

// decode reads the JSON body of resp into out; a nil out discards it.
func decode(resp *http.Response, out any) error {
	if out == nil {
		return nil
	}
	dec := json.NewDecoder(resp.Body)
	if err := dec.Decode(out); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("decode response: empty body")
		}
		return fmt.Errorf("decode response: %w", err)
	}
	return nil
}

// parseQueryMeta reads the registry's headers of a read.
func parseQueryMeta(resp *http.Response, took time.Duration) (*QueryMeta, error) {
	qm := &QueryMeta{RequestTime: took}
	idx, err := parseIndex(resp)
	if err != nil {
		return nil, err
	}
	qm.LastIndex = idx
	if v := resp.Header.Get(HeaderKnownLeader); v != "" {
		qm.KnownLeader = v == "true"
	}
	if v := resp.Header.Get(HeaderLastContact); v != "" {
		ms, err := strconv.ParseUint(v, 10, 63)
		if err != nil {
			return nil, fmt.Errorf("bad %s header %q", HeaderLastContact, v)
		}
		qm.LastContact = time.Duration(ms) * time.Millisecond
	}
	return qm, nil
}

func parseWriteMeta(resp *http.Response, took time.Duration) (*WriteMeta, error) {
	idx, err := parseIndex(resp)
	if err != nil {
		return nil, err
	}
	return &WriteMeta{LastIndex: idx, RequestTime: took}, nil
}

func parseIndex(resp *http.Response) (uint64, error) {
	v := resp.Header.Get(HeaderIndex)
	if v == "" {
		return 0, nil
	}
	idx, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad %s header %q", HeaderIndex, v)
	}
	return idx, nil
}

// query sends a GET of path and decodes its answer into out.
func (c *Client) query(ctx context.Context, path string, params url.Values, out any, q *QueryOptions) (*QueryMeta, error) {
	r := c.newRequest(http.MethodGet, path)
	for k, vs := range params {
		r.params[k] = vs
	}
	r.setQuery(q)
	resp, took, err := c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	defer closeBody(resp)
	qm, err := parseQueryMeta(resp, took)
	if err != nil {
		return nil, err
	}
	if err := decode(resp, out); err != nil {
		return nil, err
	}
	return qm, nil
}

// write sends method to path with in as its JSON body (none when nil) and
// decodes the answer into out (discarded when nil).
func (c *Client) write(ctx context.Context, method, path string, in, out any, w *WriteOptions) (*WriteMeta, error) {
	return c.writeQuery(ctx, method, path, nil, in, out, w)
}

// writeQuery is write with query parameters of the endpoint's own.
func (c *Client) writeQuery(ctx context.Context, method, path string, params url.Values, in, out any, w *WriteOptions) (*WriteMeta, error) {
	r := c.newRequest(method, path)
	for k, vs := range params {
		r.params[k] = vs
	}
	r.setWrite(w)
	if in != nil {
		if err := r.setJSON(in); err != nil {
			return nil, err
		}
	}
	resp, took, err := c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	defer closeBody(resp)
	wm, err := parseWriteMeta(resp, took)
	if err != nil {
		return nil, err
	}
	if err := decode(resp, out); err != nil {
		return nil, err
	}
	return wm, nil
}

// seg escapes one path segment; the caller checks it with need first.
func seg(s string) string { return url.PathEscape(s) }

// need returns an error when value, the named argument, cannot be a path
// segment: an empty one, "." or ".." would address another endpoint.
func need(name, value string) error {
	switch value {
	case "":
		return fmt.Errorf("missing %s", name)
	case ".", "..":
		return fmt.Errorf("invalid %s %q", name, value)
	}
	return nil
}
