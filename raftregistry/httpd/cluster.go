package httpd

import (
	"net/http"
	"strconv"

	"github.com/coexist-dev/coexist/api"
)

// statusLeader answers this server's view of the leader; no token needed.
func (s *Server) statusLeader(w http.ResponseWriter, _ *http.Request, _ *call) error {
	s.setLeaderHeaders(w)
	l, ok := s.store.Leader()
	if !ok {
		return httpErrorf(http.StatusServiceUnavailable, "no leader known: the cluster may be electing one")
	}
	writeJSON(w, http.StatusOK, l)
	return nil
}

// statusPeers answers the Raft configuration; no token needed.
func (s *Server) statusPeers(w http.ResponseWriter, _ *http.Request, _ *call) error {
	s.setLeaderHeaders(w)
	peers, err := s.store.Peers()
	if err != nil {
		return err
	}
	if peers == nil {
		peers = []api.Peer{}
	}
	writeJSON(w, http.StatusOK, peers)
	return nil
}

func (s *Server) join(w http.ResponseWriter, r *http.Request, c *call) error {
	var req api.JoinRequest
	if err := decodeJSON(c.body, &req); err != nil {
		return err
	}
	if req.ID == "" {
		return badRequest("id", "must not be empty")
	}
	if req.RaftAddr == "" {
		return badRequest("raft_addr", "must not be empty")
	}
	// The Raft address is the transport's business: an in-memory one is no
	// host:port.
	if err := s.store.Join(r.Context(), req); err != nil {
		return err
	}
	s.setWriteIndex(w)
	writeEmpty(w)
	return nil
}

func (s *Server) removePeer(w http.ResponseWriter, r *http.Request, _ *call) error {
	if err := s.store.RemoveServer(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	s.setWriteIndex(w)
	writeEmpty(w)
	return nil
}

// setWriteIndex sets the index of a write that does not go through Apply
// (membership, restore): the last index applied locally.
func (s *Server) setWriteIndex(w http.ResponseWriter) {
	w.Header().Set(api.HeaderIndex, strconv.FormatUint(s.store.State().LastIndex(), 10))
}
