package httpd

import (
	"fmt"
	"net/http"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/raftregistry/census"
	"github.com/coexist-dev/coexist/raftregistry/state"
)

func (s *Server) listContainers(w http.ResponseWriter, r *http.Request, c *call) error {
	end, err := s.watched(r, c, census.TableContainers)
	if err != nil {
		return err
	}
	defer end()
	node := r.URL.Query().Get("node")
	if node != "" {
		if err := state.ValidateName("node", node); err != nil {
			return err
		}
	}
	// Env values and status messages are shown by role (env values, to
	// agents, by node): the cached answer is per what the caller may see.
	seen := "no-env"
	switch {
	case c.id.showEnv(""):
		seen = "env"
	case c.id.role == api.RoleAgent:
		seen = "agent:" + c.id.node
	}
	key := "containers?node=" + node + "&" + seen
	return s.blockingCached(w, r, c, key, []state.Table{state.TableContainers}, func(st *state.Store) (uint64, state.WatchSet, any, error) {
		idx, cts, ws := st.Containers(node)
		out := make([]api.Container, 0, len(cts))
		for _, ct := range cts {
			out = append(out, c.id.container(ct))
		}
		return idx, ws, out, nil
	})
}

func (s *Server) getContainer(w http.ResponseWriter, r *http.Request, c *call) error {
	id, err := pathName(r, "id", "id")
	if err != nil {
		return err
	}
	return s.blocking(w, r, c, func(st *state.Store) (uint64, state.WatchSet, any, error) {
		idx, ct, ws := st.Container(id)
		if ct == nil {
			return idx, ws, nil, fmt.Errorf("container %q: %w", id, state.ErrNotFound)
		}
		return idx, ws, c.id.container(ct), nil
	})
}

func (s *Server) putContainer(w http.ResponseWriter, r *http.Request, c *call) error {
	id, err := pathName(r, "id", "id")
	if err != nil {
		return err
	}
	cas, err := parseCAS(r)
	if err != nil {
		return err
	}
	spec, err := parseContainer(id, c.body)
	if err != nil {
		return err
	}
	return s.applyContainer(w, r, c, &state.PutContainer{ID: id, Spec: spec, CAS: cas}, id)
}

func (s *Server) deleteContainer(w http.ResponseWriter, r *http.Request, c *call) error {
	id, err := pathName(r, "id", "id")
	if err != nil {
		return err
	}
	return s.applyContainer(w, r, c, &state.DeleteContainer{ID: id}, id)
}

func (s *Server) putContainerStatus(w http.ResponseWriter, r *http.Request, c *call) error {
	id, err := pathName(r, "id", "id")
	if err != nil {
		return err
	}
	st, err := parseStatus(c.body, time.Now().UTC())
	if err != nil {
		return err
	}
	// An agent reports for its own node only. The state store has the last
	// word (ErrPermission, whatever happens in between); this check only
	// gives the clearer message.
	if c.id.role == api.RoleAgent {
		if _, ct, _ := s.store.State().Container(id); ct != nil && ct.Spec.Node != c.id.node {
			return httpErrorf(http.StatusForbidden, "permission denied: %s needs the agent token of node %q or a management token; this is the agent token of node %q",
				describe(r), ct.Spec.Node, c.id.node)
		}
	}
	return s.applyContainer(w, r, c, &state.SetContainerStatus{ID: id, Node: c.id.node, Status: st}, id)
}

func (s *Server) applyContainer(w http.ResponseWriter, r *http.Request, c *call, cmd state.Command, id string) error {
	val, err := s.apply(w, r, cmd)
	if err != nil {
		return err
	}
	ct, err := written(val, func() *state.Container {
		_, ct, _ := s.store.State().Container(id)
		return ct
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c.id.container(ct))
	return nil
}
