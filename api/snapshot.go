package api

import (
	"context"
	"io"
	"net/http"
)

// Snapshot is the handle on backups of the registry's state.
type Snapshot struct{ c *Client }

// Snapshot returns the handle on backups.
func (c *Client) Snapshot() *Snapshot { return &Snapshot{c: c} }

// Save streams a snapshot of the registry's state. The caller must close it.
func (s *Snapshot) Save(ctx context.Context, q *QueryOptions) (io.ReadCloser, *QueryMeta, error) {
	r := s.c.newRequest(http.MethodGet, "/v1/snapshot")
	r.setQuery(q)
	resp, took, err := s.c.do(ctx, r)
	if err != nil {
		return nil, nil, err
	}
	qm, err := parseQueryMeta(resp, took)
	if err != nil {
		closeBody(resp)
		return nil, nil, err
	}
	return resp.Body, qm, nil
}

// Restore replaces the registry's state with the snapshot read from snap, as
// Save wrote it.
func (s *Snapshot) Restore(ctx context.Context, snap io.Reader, w *WriteOptions) (*WriteMeta, error) {
	r := s.c.newRequest(http.MethodPut, "/v1/snapshot")
	r.setWrite(w)
	r.stream = snap
	r.ctype = "application/octet-stream"
	resp, took, err := s.c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	defer closeBody(resp)
	return parseWriteMeta(resp, took)
}
