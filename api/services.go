package api

import (
	"context"
	"net/http"
)

// Services is the handle on the service versions of the registry.
type Services struct{ c *Client }

// Services returns the handle on service versions.
func (c *Client) Services() *Services { return &Services{c: c} }

// List returns every service with its versions.
func (s *Services) List(ctx context.Context, q *QueryOptions) ([]Service, *QueryMeta, error) {
	var out []Service
	qm, err := s.c.query(ctx, "/v1/services", nil, &out, q)
	if err != nil {
		return nil, nil, err
	}
	return out, qm, nil
}

// Info returns one service with its versions.
func (s *Services) Info(ctx context.Context, service string, q *QueryOptions) (*Service, *QueryMeta, error) {
	if err := need("service", service); err != nil {
		return nil, nil, err
	}
	var out Service
	qm, err := s.c.query(ctx, "/v1/services/"+seg(service), nil, &out, q)
	if err != nil {
		return nil, nil, err
	}
	return &out, qm, nil
}

// Declare declares a version of a service, or declares it again: with the
// same range that is a no-op, on a draining version it cancels the drain, on
// a retired one it is a rollback. w.CAS makes it a check-and-set on the
// version's modify index (IsConflict when it is elsewhere); pointing to 0 it
// means create-only, whatever the state of an existing version.
func (s *Services) Declare(ctx context.Context, service, version string, req VersionRequest, w *WriteOptions) (*ServiceVersion, *WriteMeta, error) {
	if err := need("service", service); err != nil {
		return nil, nil, err
	}
	if err := need("version", version); err != nil {
		return nil, nil, err
	}
	var out ServiceVersion
	wm, err := s.c.write(ctx, http.MethodPut, versionPath(service, version), req, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

// Retire starts retiring a version: it answers the version, now draining. It
// becomes retired once every container holding it has drained.
func (s *Services) Retire(ctx context.Context, service, version string, w *WriteOptions) (*ServiceVersion, *WriteMeta, error) {
	if err := need("service", service); err != nil {
		return nil, nil, err
	}
	if err := need("version", version); err != nil {
		return nil, nil, err
	}
	var out ServiceVersion
	wm, err := s.c.write(ctx, http.MethodDelete, versionPath(service, version), nil, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

func versionPath(service, version string) string {
	return "/v1/services/" + seg(service) + "/versions/" + seg(version)
}
