package httpd

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/raftregistry/census"
	"github.com/coexist-dev/coexist/raftregistry/state"
)

func (s *Server) listServices(w http.ResponseWriter, r *http.Request, c *call) error {
	end, err := s.watched(r, c, census.TableServices)
	if err != nil {
		return err
	}
	defer end()
	return s.blockingCached(w, r, c, "services", []state.Table{state.TableServices}, func(st *state.Store) (uint64, state.WatchSet, any, error) {
		idx, vs, ws := st.Versions("")
		return idx, ws, state.ServicesAPI(vs), nil
	})
}

func (s *Server) getService(w http.ResponseWriter, r *http.Request, c *call) error {
	name, err := pathName(r, "service", "service")
	if err != nil {
		return err
	}
	return s.blocking(w, r, c, func(st *state.Store) (uint64, state.WatchSet, any, error) {
		idx, vs, ws := st.Versions(name)
		svcs := state.ServicesAPI(vs)
		if len(svcs) == 0 {
			return idx, ws, nil, fmt.Errorf("service %q has no version declared: %w", name, state.ErrNotFound)
		}
		svc := svcs[0]
		if v, err := s.store.Census(); err == nil {
			svc.Served = served(st, &svc, census.Cohorts(v.Watchers))
		}
		return idx, ws, svc, nil
	})
}

// served lists, for each version of svc that is not retired, the cohorts
// routed to it on st: so that a version no live client uses shows.
func served(st *state.Store, svc *api.Service, cohorts []census.Cohort) map[string][]api.Cohort {
	_, services, containers, nodes := routingInputs(st)
	out := map[string][]api.Cohort{}
	for _, v := range svc.Versions {
		if v.State != api.VersionRetired {
			out[v.Version] = cohortsAPI(census.Served(services, containers, nodes, cohorts, svc.Name, v.Version))
		}
	}
	return out
}

func (s *Server) declareVersion(w http.ResponseWriter, r *http.Request, c *call) error {
	svc, err := pathName(r, "service", "service")
	if err != nil {
		return err
	}
	ver, err := pathVersion(r, "version")
	if err != nil {
		return err
	}
	cas, err := parseCAS(r)
	if err != nil {
		return err
	}
	if _, err := forceFlag(r); err != nil {
		return err
	}
	cmd, err := parseVersion(svc, ver, c.body)
	if err != nil {
		return err
	}
	cmd.CAS = cas
	k := state.VersionKey{Service: svc, Version: ver}
	if old := s.store.State().Version(k); old != nil && old.State != api.VersionRetired && old.Clients != cmd.Clients {
		// A new range may exclude clients the version serves now.
		if err := s.refuseStranding(r, census.Change{Service: svc, Version: ver, Clients: cmd.Clients}); err != nil {
			return err
		}
	}
	return s.applyVersion(w, r, cmd, k)
}

func (s *Server) retireVersion(w http.ResponseWriter, r *http.Request, _ *call) error {
	svc, err := pathName(r, "service", "service")
	if err != nil {
		return err
	}
	ver, err := pathStoredVersion(r, "version")
	if err != nil {
		return err
	}
	q := r.URL.Query()
	purge, err := flag(q.Has("purge"), q.Get("purge"), "purge")
	if err != nil {
		return err
	}
	if _, err := forceFlag(r); err != nil {
		return err
	}
	k := state.VersionKey{Service: svc, Version: ver}
	if purge {
		return s.purgeVersion(w, r, k)
	}
	if old := s.store.State().Version(k); old != nil && old.State == api.VersionActive {
		if err := s.refuseStranding(r, census.Change{Service: svc, Version: ver, Retire: true}); err != nil {
			return err
		}
	}
	cmd := &state.RetireVersion{Service: svc, Version: ver, Now: time.Now().UTC()}
	return s.applyVersion(w, r, cmd, k)
}

// purgeVersion answers DELETE .../versions/{version}?purge: it removes a
// retired version no container holds, and answers the record as it was.
func (s *Server) purgeVersion(w http.ResponseWriter, r *http.Request, k state.VersionKey) error {
	before := s.store.State().Version(k)
	val, err := s.apply(w, r, &state.PurgeVersion{Service: k.Service, Version: k.Version})
	if err != nil {
		return err
	}
	v, ok := val.(*state.ServiceVersion)
	if !ok || v == nil {
		v = before
	}
	if v == nil {
		writeEmpty(w)
		return nil
	}
	writeJSON(w, http.StatusOK, v.API())
	return nil
}

// purgeService answers DELETE /v1/services/{service}: it removes the service
// when every version of it is retired and held by no container, and answers
// the service as it was.
func (s *Server) purgeService(w http.ResponseWriter, r *http.Request, _ *call) error {
	name, err := pathName(r, "service", "service")
	if err != nil {
		return err
	}
	_, before, _ := s.store.State().Versions(name)
	val, err := s.apply(w, r, &state.PurgeService{Service: name})
	if err != nil {
		return err
	}
	vs, ok := val.([]*state.ServiceVersion)
	if !ok || len(vs) == 0 {
		vs = before
	}
	out := api.Service{Name: name, Versions: []api.ServiceVersion{}}
	if svcs := state.ServicesAPI(vs); len(svcs) == 1 {
		out = svcs[0]
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) applyVersion(w http.ResponseWriter, r *http.Request, cmd state.Command, k state.VersionKey) error {
	val, err := s.apply(w, r, cmd)
	if err != nil {
		return err
	}
	v, err := written(val, func() *state.ServiceVersion { return s.store.State().Version(k) })
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v.API())
	return nil
}

// apply proposes one command and sets the index it was applied at. A
// command the state store rejected comes back as the error.
func (s *Server) apply(w http.ResponseWriter, r *http.Request, cmd state.Command) (any, error) {
	res, err := s.store.Apply(r.Context(), cmd)
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, res.Err
	}
	w.Header().Set(api.HeaderIndex, strconv.FormatUint(res.Index, 10))
	return res.Value, nil
}

// written returns the record a command wrote, from its result or, when the
// result does not carry it, from the local replica.
func written[T any](val any, read func() *T) (*T, error) {
	if v, ok := val.(*T); ok && v != nil {
		return v, nil
	}
	if v := read(); v != nil {
		return v, nil
	}
	var zero T
	return nil, fmt.Errorf("the write was applied but its %T record is not in the local state", zero)
}

// writeEmpty answers {} for writes with nothing to show.
func writeEmpty(w http.ResponseWriter) {
	writeJSON(w, http.StatusOK, struct{}{})
}
