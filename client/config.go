package client

import (
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/client/callpolicy"
	"github.com/coexist-dev/coexist/routing"
)

// Defaults of Config.
const (
	DefaultInitialTimeout = 10 * time.Second
	DefaultStaleThreshold = 30 * time.Second
	DefaultWatchWait      = 30 * time.Second
	DefaultRetryTimeout   = 2 * time.Second
)

// Pauses of the registry watches after a failed query.
const (
	watchMinBackoff = 100 * time.Millisecond
	watchMaxBackoff = 2 * time.Second
)

// Config configures a Client. Name and Version are required.
type Config struct {
	// Name is the client's name, sent as Coexist-Client (e.g. "web").
	Name string
	// Version is the client's own semantic version, sent as
	// Coexist-Client-Version; it decides which service versions serve it.
	Version string
	// Requires maps a service to the client's own constraint on its version,
	// e.g. {"greeter": "~> 1.2"}: a version outside it is never called, even
	// when its clients range admits this client.
	Requires map[string]string
	// Node is the id of the node this process runs on, if any: containers on
	// it are preferred.
	Node string

	// Registry is the registry's URL, or the URLs of several of its servers
	// separated by commas; empty means COEXIST_ADDR, else
	// api.DefaultAddress. The client learns the other servers from the
	// registry and fails over to them (api.Config.RefreshServers). The TLS
	// settings come from the environment as for api.DefaultConfig.
	Registry string
	// Token is the ACL token (a read token is enough); empty means
	// COEXIST_TOKEN.
	Token string
	// APIClient, when set, is the registry client to use; Registry and Token
	// are then ignored.
	APIClient *api.Client

	// InitialTimeout bounds how long New waits for the first route table
	// (default 10s).
	InitialTimeout time.Duration
	// StaleThreshold is the age of the route table past which the client
	// logs a warning that it routes from an old table (default 30s).
	StaleThreshold time.Duration
	// WatchWait is the wait of each blocking query (default 30s).
	WatchWait time.Duration
	// RetryTimeout bounds the retries of a call whose context has no
	// deadline (default 2s); a call with a deadline retries until it.
	RetryTimeout time.Duration

	// Logger receives the client's logs; nil discards them.
	Logger hclog.Logger
	// HTTPTransport carries calls to the gateways; nil means a transport
	// tuned for many calls to few hosts, with no proxy.
	HTTPTransport http.RoundTripper
	// Rand draws the power-of-two choice among containers and the jitter
	// of the pauses between retries; nil means math/rand/v2's top-level
	// functions. It must be safe for concurrent use.
	Rand routing.Rand
}

func (cfg *Config) setDefaults() {
	if cfg.InitialTimeout <= 0 {
		cfg.InitialTimeout = DefaultInitialTimeout
	}
	if cfg.StaleThreshold <= 0 {
		cfg.StaleThreshold = DefaultStaleThreshold
	}
	if cfg.WatchWait <= 0 {
		cfg.WatchWait = DefaultWatchWait
	}
	if cfg.RetryTimeout <= 0 {
		cfg.RetryTimeout = DefaultRetryTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Rand == nil {
		cfg.Rand = callpolicy.SharedRand{}
	}
}

// apiClient returns the registry client cfg describes.
func (cfg *Config) apiClient() (*api.Client, error) {
	if cfg.APIClient != nil {
		return cfg.APIClient, nil
	}
	ac := api.DefaultConfig()
	if cfg.Registry != "" {
		ac.Address = cfg.Registry
	}
	if cfg.Token != "" {
		ac.Token = cfg.Token
	}
	ac.RefreshServers = api.DefaultRefreshServers
	return api.NewClient(ac)
}

// DefaultTransport returns the transport a Client uses to reach gateways
// when Config.HTTPTransport is nil: no proxy (service names are not hosts),
// a dial that fails fast so that a call is retried soon on another
// container, and many idle connections per gateway.
func DefaultTransport() *http.Transport {
	return &http.Transport{
		Proxy: nil,
		DialContext: (&net.Dialer{
			Timeout:   2 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          0, // no limit but per host
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}
