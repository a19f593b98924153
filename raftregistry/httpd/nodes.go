package httpd

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/raftregistry/census"
	"github.com/coexist-dev/coexist/raftregistry/state"
)

func (s *Server) listNodes(w http.ResponseWriter, r *http.Request, c *call) error {
	end, err := s.watched(r, c, census.TableNodes)
	if err != nil {
		return err
	}
	defer end()
	return s.blockingCached(w, r, c, "nodes", []state.Table{state.TableNodes}, func(st *state.Store) (uint64, state.WatchSet, any, error) {
		idx, nodes, ws := st.Nodes()
		out := make([]api.Node, 0, len(nodes))
		for _, n := range nodes {
			out = append(out, n.API())
		}
		return idx, ws, out, nil
	})
}

func (s *Server) getNode(w http.ResponseWriter, r *http.Request, c *call) error {
	id, err := pathName(r, "id", "id")
	if err != nil {
		return err
	}
	return s.blocking(w, r, c, func(st *state.Store) (uint64, state.WatchSet, any, error) {
		idx, n, ws := st.Node(id)
		if n == nil {
			return idx, ws, nil, fmt.Errorf("node %q: %w", id, state.ErrNotFound)
		}
		return idx, ws, n.API(), nil
	})
}

func (s *Server) registerNode(w http.ResponseWriter, r *http.Request, c *call) error {
	id, err := pathName(r, "id", "id")
	if err != nil {
		return err
	}
	var req api.NodeRequest
	if err := decodeJSON(c.body, &req); err != nil {
		return err
	}
	cmd := &state.RegisterNode{ID: id, Address: req.Address, Gateway: req.Gateway, Labels: req.Labels}
	if err := state.ValidateNode(cmd); err != nil {
		return err
	}
	val, err := s.apply(w, r, cmd)
	if err != nil {
		return err
	}
	n, err := written(val, func() *state.Node { return nodeOf(s.store.State(), id) })
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, n.API())
	return nil
}

// heartbeat renews the node's TTL on the leader (no Raft write unless its
// status changes) and answers the node.
func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request, _ *call) error {
	id, err := pathName(r, "id", "id")
	if err != nil {
		return err
	}
	if err := s.store.Heartbeat(id); err != nil {
		return err
	}
	idx, n, _ := s.store.State().Node(id)
	if n == nil {
		return fmt.Errorf("node %q: %w", id, state.ErrNotFound)
	}
	w.Header().Set(api.HeaderIndex, strconv.FormatUint(idx, 10))
	writeJSON(w, http.StatusOK, n.API())
	return nil
}

func (s *Server) purgeNode(w http.ResponseWriter, r *http.Request, _ *call) error {
	id, err := pathName(r, "id", "id")
	if err != nil {
		return err
	}
	force, err := flag(r.URL.Query().Has("force"), r.URL.Query().Get("force"), "force")
	if err != nil {
		return err
	}
	if _, err := s.apply(w, r, &state.PurgeNode{ID: id, OnlyIfDown: !force}); err != nil {
		return err
	}
	writeEmpty(w)
	return nil
}

func nodeOf(st *state.Store, id string) *state.Node {
	_, n, _ := st.Node(id)
	return n
}
