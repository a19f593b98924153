package httpd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/raftregistry/census"
	"github.com/coexist-dev/coexist/raftregistry/state"
)

// Bounds of what a watch request may say about itself.
const (
	maxInstanceLen = 64
	maxCalls       = 256
	maxWatchers    = 1 << 16
)

// localCensus is the census of the watchers this server serves
// (docs/design.md §5), behind a lock, with a channel that tells the reporter
// when it changed.
type localCensus struct {
	mu      sync.Mutex
	c       *census.Local
	size    int
	changed chan struct{} // buffered, one slot
}

func newLocalCensus(ttl time.Duration) *localCensus {
	return &localCensus{c: census.NewLocal(ttl), changed: make(chan struct{}, 1)}
}

// identity reads who a watch request comes from; ok is false when it does
// not say (no Coexist-Instance).
func watcherIdentity(h http.Header) (id census.Identity, ok bool, err error) {
	id.Instance = h.Get(api.HeaderInstance)
	if id.Instance == "" {
		return id, false, nil
	}
	if len(id.Instance) > maxInstanceLen || strings.ContainsFunc(id.Instance, func(r rune) bool { return r <= ' ' || r > '~' }) {
		return id, false, badRequest(api.HeaderInstance, "must be 1 to %d printable characters", maxInstanceLen)
	}
	id.Name, id.Version = h.Get(api.HeaderClient), h.Get(api.HeaderClientVersion)
	if id.Name == census.AgentName {
		id.Kind = census.KindAgent
		if err := api.CheckName(id.Version); err != nil {
			return id, false, badRequest(api.HeaderClientVersion, "an agent sends its node id: %v", err)
		}
		return id, true, nil
	}
	id.Kind = census.KindClient
	if id.Name == "" || len(id.Name) > api.MaxNameLen {
		return id, false, badRequest(api.HeaderClient, "must be 1 to %d characters", api.MaxNameLen)
	}
	if err := api.CheckVersion(id.Version); err != nil {
		return id, false, badRequest(api.HeaderClientVersion, "%v", err)
	}
	if v := h.Get(api.HeaderCalls); v != "" {
		for _, svc := range strings.Split(v, ",") {
			svc = strings.TrimSpace(svc)
			if err := api.CheckName(svc); err != nil {
				return id, false, badRequest(api.HeaderCalls, "%v", err)
			}
			id.Calls = append(id.Calls, svc)
		}
		if len(id.Calls) > maxCalls {
			return id, false, badRequest(api.HeaderCalls, "names %d services, at most %d", len(id.Calls), maxCalls)
		}
	}
	if v := h.Get(api.HeaderClientRequires); v != "" {
		q, err := url.ParseQuery(v)
		if err != nil {
			return id, false, badRequest(api.HeaderClientRequires, "is not service=range, URL-encoded: %v", err)
		}
		id.Requires = map[string]string{}
		for svc, rs := range q {
			if err := api.CheckName(svc); err != nil {
				return id, false, badRequest(api.HeaderClientRequires, "%v", err)
			}
			if len(rs) != 1 {
				return id, false, badRequest(api.HeaderClientRequires, "service %q is required %d times", svc, len(rs))
			}
			if err := api.CheckRange(rs[0]); err != nil {
				return id, false, badRequest(api.HeaderClientRequires, "requires[%s]: %v", svc, err)
			}
			id.Requires[svc] = rs[0]
		}
		if len(id.Requires) > maxCalls {
			return id, false, badRequest(api.HeaderClientRequires, "names %d services, at most %d", len(id.Requires), maxCalls)
		}
	}
	return id, true, nil
}

// watched counts a watch request of table in the census for as long as it
// is open; the returned function ends it. A request that says nothing of
// itself is not counted.
func (s *Server) watched(r *http.Request, c *call, table string) (end func(), err error) {
	id, ok, err := watcherIdentity(r.Header)
	if err != nil || !ok {
		return func() {}, err
	}
	lc := s.census
	lc.mu.Lock()
	if lc.size >= maxWatchers {
		lc.mu.Unlock()
		return func() {}, nil
	}
	lc.c.Begin(id, table, c.q.index, time.Now())
	changed := lc.c.Changed()
	lc.mu.Unlock()
	if changed {
		lc.kick()
	}
	return func() {
		lc.mu.Lock()
		lc.c.End(id.Instance, table, time.Now())
		lc.mu.Unlock()
	}, nil
}

func (lc *localCensus) kick() {
	select {
	case lc.changed <- struct{}{}:
	default:
	}
}

func (lc *localCensus) report() []census.Entry {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	es := lc.c.Report(time.Now())
	lc.size = len(es)
	return es
}

// censusReport is the body of POST /v1/census/report.
type censusReport struct {
	Server  string         `json:"server"`
	Entries []census.Entry `json:"entries"`
}

// Census reporting: on change (gathered over censusCoalesce) and at least
// every censusPeriod.
const (
	censusPeriod   = time.Second
	censusCoalesce = 5 * time.Millisecond
)

// RunCensus reports this server's census to the leader until ctx ends: on
// change and at least every second (docs/design.md §5). On the leader it
// hands the census over in process; a follower posts it to the leader with
// the management token.
func (s *Server) RunCensus(ctx context.Context) {
	hc := &http.Client{Transport: s.proxy.Transport, Timeout: 5 * time.Second}
	tick := time.NewTicker(censusPeriod)
	defer tick.Stop()
	for {
		if err := s.sendCensus(ctx, hc); err != nil && ctx.Err() == nil {
			s.logger.Debug("census report failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-s.census.changed:
			select {
			case <-ctx.Done():
				return
			case <-time.After(censusCoalesce):
			}
		}
	}
}

func (s *Server) sendCensus(ctx context.Context, hc *http.Client) error {
	entries := s.census.report()
	if s.store.IsLeader() {
		return s.store.CensusReport(s.store.ServerID(), entries)
	}
	leader, ok := s.store.Leader()
	if !ok || leader.HTTPAddr == "" {
		return errors.New("no leader known")
	}
	if !s.hasMgmt {
		return errors.New("no management token to report with")
	}
	body, err := json.Marshal(censusReport{Server: s.store.ServerID(), Entries: entries})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(leader.HTTPAddr, "/")+"/v1/census/report", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.mgmtToken)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("leader answered %s", resp.Status)
	}
	return nil
}

// postCensusReport answers POST /v1/census/report: a server's census, on
// the leader.
func (s *Server) postCensusReport(w http.ResponseWriter, r *http.Request, c *call) error {
	var rep censusReport
	if err := decodeJSON(c.body, &rep); err != nil {
		return err
	}
	if rep.Server == "" || len(rep.Server) > 128 {
		return badRequest("server", "must be the reporting server's id, 1 to 128 characters")
	}
	if err := s.store.CensusReport(rep.Server, rep.Entries); err != nil {
		return err
	}
	writeEmpty(w)
	return nil
}

// deleteCensusWatcher answers DELETE /v1/census/watchers/{instance}: a
// watcher closing cleanly leaves the census of the server it watched on at
// once, instead of staying live for census_ttl. The request must come from
// the instance itself (Coexist-Instance names it). Only this server forgets
// it; the leader learns with the next report.
func (s *Server) deleteCensusWatcher(w http.ResponseWriter, r *http.Request, _ *call) error {
	inst := r.PathValue("instance")
	if inst == "" || r.Header.Get(api.HeaderInstance) != inst {
		return badRequest(api.HeaderInstance, "must name the instance that leaves")
	}
	lc := s.census
	lc.mu.Lock()
	lc.c.Leave(inst)
	changed := lc.c.Changed()
	lc.mu.Unlock()
	if changed {
		lc.kick()
	}
	writeEmpty(w)
	return nil
}

// getCensus answers GET /v1/census: the live watchers of the fleet.
func (s *Server) getCensus(w http.ResponseWriter, r *http.Request, _ *call) error {
	v, err := s.store.Census()
	if err != nil {
		return err
	}
	out := api.Census{Complete: v.Complete, Missing: v.Missing, Watchers: make([]api.Watcher, 0, len(v.Watchers)),
		Cohorts: cohortsAPI(census.Cohorts(v.Watchers))}
	for _, cw := range v.Watchers {
		aw := api.Watcher{Instance: cw.Instance, Kind: cw.Kind, Name: cw.Name, Version: cw.Version, Calls: cw.Calls,
			Requires: cw.Requires, Server: cw.Server}
		for _, t := range cw.Tables {
			aw.Tables = append(aw.Tables, api.WatcherTable{Table: t.Table, Index: t.Ack, Lag: t.Lag, LagTime: api.Duration(t.LagTime)})
		}
		out.Watchers = append(out.Watchers, aw)
	}
	s.setLeaderHeaders(w)
	writeJSON(w, http.StatusOK, out)
	return nil
}

func cohortsAPI(cs []census.Cohort) []api.Cohort {
	out := make([]api.Cohort, 0, len(cs))
	for _, c := range cs {
		out = append(out, api.Cohort{Name: c.Name, Version: c.Version, Requires: c.Requires, Instances: c.Instances, Calls: c.Calls})
	}
	return out
}

// getInForce answers GET /v1/census/in-force?index=N[&wait=D]: whether the
// change at index N is in force, waiting up to D for it.
func (s *Server) getInForce(w http.ResponseWriter, r *http.Request, _ *call) error {
	q, err := parseQuery(r)
	if err != nil {
		return err
	}
	if !r.URL.Query().Has("index") {
		return badRequest("index", "is required: the index of the change, as a write's %s answers", api.HeaderIndex)
	}
	var timer <-chan time.Time
	if q.wait > 0 {
		t := time.NewTimer(min(q.wait, maxWait))
		defer t.Stop()
		timer = t.C
	}
	for {
		_, ws := s.store.State().Watch(state.TableServices, state.TableContainers, state.TableNodes)
		ok, complete, lagging, changed, err := s.store.InForce(q.index)
		if err != nil {
			return err
		}
		if ok || timer == nil {
			return writeInForce(w, s, q.index, ok, complete, lagging)
		}
		// The census changes on every report; the state when a table moves.
		// Either may put the change in force; completeness comes with time.
		poll := time.NewTimer(100 * time.Millisecond)
		chans := append(state.WatchSet{changed}, ws...)
		res := waitAny(r, chans, poll.C)
		poll.Stop()
		switch res {
		case waitDone:
			return r.Context().Err()
		case waitTimeout:
			select {
			case <-timer:
				ok, complete, lagging, _, err := s.store.InForce(q.index)
				if err != nil {
					return err
				}
				return writeInForce(w, s, q.index, ok, complete, lagging)
			default:
			}
		}
	}
}

func writeInForce(w http.ResponseWriter, s *Server, index uint64, ok, complete bool, lagging []census.Lagging) error {
	out := api.InForce{Index: index, InForce: ok, CensusComplete: complete, Lagging: make([]api.Lagging, 0, len(lagging))}
	for _, l := range lagging {
		out.Lagging = append(out.Lagging, api.Lagging{Instance: l.Instance, Kind: l.Kind, Name: l.Name, Version: l.Version,
			Server: l.Server, Table: l.Table, Index: l.Ack, Need: l.Need})
	}
	s.setLeaderHeaders(w)
	w.Header().Set(api.HeaderIndex, strconv.FormatUint(index, 10))
	writeJSON(w, http.StatusOK, out)
	return nil
}

// censusWait bounds how long a write that must consult the census waits for
// a new leader's census to be complete.
const censusWait = 15 * time.Second

// refuseStranding answers 409 when ch would leave a live client that calls
// the service with no candidate (docs/design.md §5), unless ?force=true. A
// new leader's census is waited for until complete.
// forceFlag reads ?force; every handler that takes it reads it first, so
// that a bad value is a 400 whether or not the write would strand anyone.
func forceFlag(r *http.Request) (bool, error) {
	q := r.URL.Query()
	return flag(q.Has("force"), q.Get("force"), "force")
}

func (s *Server) refuseStranding(r *http.Request, ch census.Change) error {
	force, err := forceFlag(r)
	if err != nil || force {
		return err
	}
	deadline := time.NewTimer(censusWait)
	defer deadline.Stop()
	for {
		v, err := s.store.Census()
		if err != nil {
			return err
		}
		if v.Complete {
			_, services, containers, nodes := routingInputs(s.store.State())
			stranded := census.Stranded(services, containers, nodes, census.Cohorts(v.Watchers), ch)
			if len(stranded) == 0 {
				return nil
			}
			return httpErrorf(http.StatusConflict, "%s", (&census.StrandedError{Change: ch, Cohorts: stranded}).Error())
		}
		select {
		case <-r.Context().Done():
			return r.Context().Err()
		case <-deadline.C:
			return httpErrorf(http.StatusServiceUnavailable, "the census of live clients is not complete yet (waiting for %s); retry, or use force=true",
				strings.Join(v.Missing, ", "))
		case <-v.Changed:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// getStranded answers GET /v1/census/stranded?service=S&version=V
// [&clients=R]: the live cohorts that retiring V (or, with clients, giving it
// the range R) would strand, without changing anything; tools ask it before
// they plan the change.
func (s *Server) getStranded(w http.ResponseWriter, r *http.Request, _ *call) error {
	q := r.URL.Query()
	ch := census.Change{Service: q.Get("service"), Version: q.Get("version"), Retire: !q.Has("clients"), Clients: q.Get("clients")}
	if err := state.ValidateName("service", ch.Service); err != nil {
		return err
	}
	if err := state.ValidateVersion("version", ch.Version); err != nil {
		return err
	}
	if !ch.Retire {
		if err := state.ValidateConstraint("clients", ch.Clients); err != nil {
			return err
		}
	}
	v, err := s.store.Census()
	if err != nil {
		return err
	}
	_, services, containers, nodes := routingInputs(s.store.State())
	stranded := census.Stranded(services, containers, nodes, census.Cohorts(v.Watchers), ch)
	out := api.Stranded{CensusComplete: v.Complete, Cohorts: cohortsAPI(stranded)}
	if len(stranded) > 0 {
		out.Error = (&census.StrandedError{Change: ch, Cohorts: stranded}).Error()
	}
	s.setLeaderHeaders(w)
	writeJSON(w, http.StatusOK, out)
	return nil
}
