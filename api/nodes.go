package api

import (
	"context"
	"net/http"
)

// Nodes is the handle on the nodes of the registry.
type Nodes struct{ c *Client }

// Nodes returns the handle on nodes.
func (c *Client) Nodes() *Nodes { return &Nodes{c: c} }

// List returns every node.
func (s *Nodes) List(ctx context.Context, q *QueryOptions) ([]Node, *QueryMeta, error) {
	var out []Node
	qm, err := s.c.query(ctx, "/v1/nodes", nil, &out, q)
	if err != nil {
		return nil, nil, err
	}
	return out, qm, nil
}

// Info returns one node.
func (s *Nodes) Info(ctx context.Context, id string, q *QueryOptions) (*Node, *QueryMeta, error) {
	if err := need("node id", id); err != nil {
		return nil, nil, err
	}
	var out Node
	qm, err := s.c.query(ctx, "/v1/nodes/"+seg(id), nil, &out, q)
	if err != nil {
		return nil, nil, err
	}
	return &out, qm, nil
}

// Register registers node id or updates its addresses and labels; an agent
// calls it for its own node when it starts.
func (s *Nodes) Register(ctx context.Context, id string, req NodeRequest, w *WriteOptions) (*Node, *WriteMeta, error) {
	if err := need("node id", id); err != nil {
		return nil, nil, err
	}
	var out Node
	wm, err := s.c.write(ctx, http.MethodPut, "/v1/nodes/"+seg(id), req, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

// Heartbeat renews the TTL of node id on the leader.
func (s *Nodes) Heartbeat(ctx context.Context, id string, w *WriteOptions) (*Node, *WriteMeta, error) {
	if err := need("node id", id); err != nil {
		return nil, nil, err
	}
	var out Node
	wm, err := s.c.write(ctx, http.MethodPut, "/v1/nodes/"+seg(id)+"/heartbeat", nil, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

// Delete purges node id, so that nothing waits for ever on the containers of
// a dead node. The registry refuses (409) a node that is still ready unless
// w.Force is set.
func (s *Nodes) Delete(ctx context.Context, id string, w *WriteOptions) (*WriteMeta, error) {
	if err := need("node id", id); err != nil {
		return nil, err
	}
	return s.c.write(ctx, http.MethodDelete, "/v1/nodes/"+seg(id), nil, nil, w)
}
