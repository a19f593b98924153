package api

import (
	"context"
	"net/http"
	"net/url"
)

// Containers is the handle on the containers of the registry.
type Containers struct{ c *Client }

// Containers returns the handle on containers.
func (c *Client) Containers() *Containers { return &Containers{c: c} }

// List returns the containers on node, or every container when node is empty.
func (s *Containers) List(ctx context.Context, node string, q *QueryOptions) ([]Container, *QueryMeta, error) {
	var params url.Values
	if node != "" {
		params = url.Values{"node": {node}}
	}
	var out []Container
	qm, err := s.c.query(ctx, "/v1/containers", params, &out, q)
	if err != nil {
		return nil, nil, err
	}
	return out, qm, nil
}

// Info returns one container with its desired and observed state.
func (s *Containers) Info(ctx context.Context, id string, q *QueryOptions) (*Container, *QueryMeta, error) {
	if err := need("container id", id); err != nil {
		return nil, nil, err
	}
	var out Container
	qm, err := s.c.query(ctx, "/v1/containers/"+seg(id), nil, &out, q)
	if err != nil {
		return nil, nil, err
	}
	return &out, qm, nil
}

// Declare declares the desired state of container id. The same body again is
// a no-op; a different body for an existing id is a conflict (IsConflict)
// unless w.CAS carries its modify index. w.CAS pointing to 0 means
// create-only.
func (s *Containers) Declare(ctx context.Context, id string, req ContainerRequest, w *WriteOptions) (*Container, *WriteMeta, error) {
	if err := need("container id", id); err != nil {
		return nil, nil, err
	}
	var out Container
	wm, err := s.c.write(ctx, http.MethodPut, "/v1/containers/"+seg(id), req, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

// Delete marks container id deleted: its agent drains and stops it. The
// answer is the container with its desired state now deleted.
func (s *Containers) Delete(ctx context.Context, id string, w *WriteOptions) (*Container, *WriteMeta, error) {
	if err := need("container id", id); err != nil {
		return nil, nil, err
	}
	var out Container
	wm, err := s.c.write(ctx, http.MethodDelete, "/v1/containers/"+seg(id), nil, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

// UpdateStatus reports the observed state of container id. Only the agent of
// the container's node may call it.
func (s *Containers) UpdateStatus(ctx context.Context, id string, status ContainerStatus, w *WriteOptions) (*Container, *WriteMeta, error) {
	if err := need("container id", id); err != nil {
		return nil, nil, err
	}
	var out Container
	wm, err := s.c.write(ctx, http.MethodPut, "/v1/containers/"+seg(id)+"/status", status, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}
