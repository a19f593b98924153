package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// AgentClientName is the Coexist-Client an agent's watches send; their
// Coexist-Client-Version is the agent's node id.
const AgentClientName = "agent"

// Identity says who a watcher is, sent with each of its requests so that the
// registry can keep its census (docs/design.md §5).
type Identity struct {
	// Instance is a random id per process (NewInstanceID).
	Instance string
	// Client and ClientVersion are the SDK client's name and version; an
	// agent sends AgentClientName and its node id.
	Client, ClientVersion string
	// Requires are the SDK client's own requirements per service.
	Requires map[string]string
	// Calls, when set, returns the services the process has routed to.
	Calls func() []string
}

// NewInstanceID returns a random id for Identity.Instance.
func NewInstanceID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// setHeaders writes id into h.
func (id *Identity) setHeaders(h http.Header) {
	h.Set(HeaderInstance, id.Instance)
	h.Set(HeaderClient, id.Client)
	h.Set(HeaderClientVersion, id.ClientVersion)
	if len(id.Requires) > 0 {
		q := url.Values{}
		for k, v := range id.Requires {
			q.Set(k, v)
		}
		h.Set(HeaderClientRequires, q.Encode())
	}
	if id.Calls != nil {
		if calls := id.Calls(); len(calls) > 0 {
			calls = slices.Clone(calls)
			slices.Sort(calls)
			h.Set(HeaderCalls, strings.Join(calls, ","))
		}
	}
}

// Census is the answer of GET /v1/census: the live watchers of the fleet.
type Census struct {
	// Complete is false while a new leader waits for every server's
	// census; Missing names the servers it waits for.
	Complete bool      `json:"complete"`
	Missing  []string  `json:"missing,omitempty"`
	Watchers []Watcher `json:"watchers"`
	// Cohorts are the live SDK clients grouped by name and version.
	Cohorts []Cohort `json:"cohorts"`
}

// Watcher is one live agent or SDK client.
type Watcher struct {
	Instance string            `json:"instance"`
	Kind     string            `json:"kind"` // agent or client
	Name     string            `json:"name"`
	Version  string            `json:"version"`
	Calls    []string          `json:"calls,omitempty"`
	Requires map[string]string `json:"requires,omitempty"`
	// Server is the registry server that serves its watches.
	Server string         `json:"server"`
	Tables []WatcherTable `json:"tables"`
}

// WatcherTable is how far a watcher has acknowledged one table: its index,
// and how far behind the table it is in indexes and in time.
type WatcherTable struct {
	Table   string   `json:"table"`
	Index   uint64   `json:"index"`
	Lag     uint64   `json:"lag"`
	LagTime Duration `json:"lag_time"`
}

// Cohort is the live SDK clients of one name, version and requirements.
type Cohort struct {
	Name      string            `json:"name"`
	Version   string            `json:"version"`
	Requires  map[string]string `json:"requires,omitempty"`
	Instances int               `json:"instances"`
	Calls     []string          `json:"calls"`
}

// InForce is the answer of GET /v1/census/in-force.
type InForce struct {
	Index          uint64    `json:"index"`
	InForce        bool      `json:"in_force"`
	CensusComplete bool      `json:"census_complete"`
	Lagging        []Lagging `json:"lagging"`
}

// Lagging is a live watcher that has not acknowledged a change.
type Lagging struct {
	Instance string `json:"instance"`
	Kind     string `json:"kind"`
	Name     string `json:"name"`
	Version  string `json:"version"`
	Server   string `json:"server"`
	Table    string `json:"table"`
	Index    uint64 `json:"index"`
	Need     uint64 `json:"need"`
}

// CensusAPI reads the fleet's census.
type CensusAPI struct{ c *Client }

// Census returns the census endpoints.
func (c *Client) Census() *CensusAPI { return &CensusAPI{c} }

// Get lists the live watchers and cohorts.
func (a *CensusAPI) Get(ctx context.Context, q *QueryOptions) (*Census, *QueryMeta, error) {
	var out Census
	qm, err := a.c.query(ctx, "/v1/census", nil, &out, q)
	if err != nil {
		return nil, nil, err
	}
	return &out, qm, nil
}

// Leave tells the registry server this client watches on that the watcher
// id is going away, so that it leaves the census at once rather than
// census_ttl after its last request (docs/design.md §5). It is sent to
// one server only (the current one: the watches went there too); elsewhere
// the watcher ages out as before.
func (a *CensusAPI) Leave(ctx context.Context, id *Identity) error {
	if id == nil || id.Instance == "" {
		return errors.New("census leave: no instance")
	}
	r := a.c.newRequest(http.MethodDelete, "/v1/census/watchers/"+seg(id.Instance))
	r.ident = id
	resp, _, err := a.c.do(ctx, r)
	if err != nil {
		return err
	}
	closeBody(resp)
	return nil
}

// InForce asks whether the change at index is in force, waiting up to wait
// (0: answer at once).
func (a *CensusAPI) InForce(ctx context.Context, index uint64, wait time.Duration) (*InForce, error) {
	p := url.Values{"index": {strconv.FormatUint(index, 10)}}
	if wait > 0 {
		p.Set("wait", wait.String())
	}
	var out InForce
	if _, err := a.c.query(ctx, "/v1/census/in-force", p, &out, nil); err != nil {
		return nil, err
	}
	return &out, nil
}

// Stranded is the answer of GET /v1/census/stranded: the live cohorts a
// retire or a new range would leave with no version to call.
type Stranded struct {
	CensusComplete bool     `json:"census_complete"`
	Cohorts        []Cohort `json:"cohorts"`
	// Error is the refusal the change would meet, empty when none.
	Error string `json:"error,omitempty"`
}

// Stranded asks which live cohorts retiring service@version would strand,
// or, when clients is not nil, giving it the range *clients.
func (a *CensusAPI) Stranded(ctx context.Context, service, version string, clients *string) (*Stranded, error) {
	p := url.Values{"service": {service}, "version": {version}}
	if clients != nil {
		p.Set("clients", *clients)
	}
	var out Stranded
	if _, err := a.c.query(ctx, "/v1/census/stranded", p, &out, nil); err != nil {
		return nil, err
	}
	return &out, nil
}

// WaitInForce waits until the change at index is in force, asking with
// blocking queries of up to wait each, until ctx ends; on timeout the error
// names the watchers still lagging.
func (a *CensusAPI) WaitInForce(ctx context.Context, index uint64, wait time.Duration) error {
	var last *InForce
	for {
		f, err := a.InForce(ctx, index, wait)
		if err == nil && f.InForce {
			return nil
		}
		if err == nil {
			last = f
		}
		select {
		case <-ctx.Done():
			return inForceTimeout(index, last, ctx.Err())
		default:
		}
		if err != nil && !IsRetryable(err) {
			return err
		}
		if err != nil {
			select {
			case <-ctx.Done():
				return inForceTimeout(index, last, ctx.Err())
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

func inForceTimeout(index uint64, last *InForce, err error) error {
	if last == nil {
		return fmt.Errorf("change at index %d not known to be in force: %w", index, err)
	}
	if !last.CensusComplete {
		return fmt.Errorf("change at index %d not in force: the census of live watchers is not complete yet: %w", index, err)
	}
	names := make([]string, 0, len(last.Lagging))
	for _, l := range last.Lagging {
		names = append(names, fmt.Sprintf("%s %s@%s (instance %s on %s, %s at %d of %d)", l.Kind, l.Name, l.Version, l.Instance, l.Server, l.Table, l.Index, l.Need))
	}
	return fmt.Errorf("change at index %d not in force; lagging watchers: %s: %w", index, strings.Join(names, "; "), err)
}
