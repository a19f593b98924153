package api

import (
	"context"
	"net/http"
)

// Status is the handle on the registry's view of its own cluster. Its
// endpoints need no token.
type Status struct{ c *Client }

// Status returns the handle on cluster status.
func (c *Client) Status() *Status { return &Status{c: c} }

// Leader returns the current Raft leader. A cluster without a leader answers
// 503 (IsRetryable).
func (s *Status) Leader(ctx context.Context, q *QueryOptions) (*Leader, *QueryMeta, error) {
	var out Leader
	qm, err := s.c.query(ctx, "/v1/status/leader", nil, &out, q)
	if err != nil {
		return nil, nil, err
	}
	return &out, qm, nil
}

// Peers returns the servers of the Raft configuration.
func (s *Status) Peers(ctx context.Context, q *QueryOptions) ([]Peer, *QueryMeta, error) {
	var out []Peer
	qm, err := s.c.query(ctx, "/v1/status/peers", nil, &out, q)
	if err != nil {
		return nil, nil, err
	}
	return out, qm, nil
}

// Cluster is the handle on Raft membership.
type Cluster struct{ c *Client }

// Cluster returns the handle on Raft membership.
func (c *Client) Cluster() *Cluster { return &Cluster{c: c} }

// Join asks the cluster to add a server. Any member accepts it; a follower
// forwards it to the leader. Joining a server that is already a member is a
// no-op.
func (s *Cluster) Join(ctx context.Context, req JoinRequest, w *WriteOptions) (*WriteMeta, error) {
	return s.c.write(ctx, http.MethodPost, "/v1/cluster/join", req, nil, w)
}

// RemovePeer removes the server with Raft id from the cluster.
func (s *Cluster) RemovePeer(ctx context.Context, id string, w *WriteOptions) (*WriteMeta, error) {
	if err := need("peer id", id); err != nil {
		return nil, err
	}
	return s.c.write(ctx, http.MethodDelete, "/v1/cluster/peers/"+seg(id), nil, nil, w)
}
