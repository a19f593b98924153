package api

import (
	"context"
	"net/http"
	"net/url"
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

// PurgeVersion removes a retired version that no container holds, for good:
// it answers the record as it was. A version not yet retired, or one a
// container still holds, is a 409 (IsConflict) that says which. Declaring
// the version again afterwards declares it afresh.
func (s *Services) PurgeVersion(ctx context.Context, service, version string, w *WriteOptions) (*ServiceVersion, *WriteMeta, error) {
	if err := need("service", service); err != nil {
		return nil, nil, err
	}
	if err := need("version", version); err != nil {
		return nil, nil, err
	}
	var out ServiceVersion
	purge := url.Values{"purge": {"true"}}
	wm, err := s.c.writeQuery(ctx, http.MethodDelete, versionPath(service, version), purge, nil, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

// Purge removes a service and all its versions, which must all be retired
// and held by no container (else a 409 naming each version that is not); it
// answers the service as it was.
func (s *Services) Purge(ctx context.Context, service string, w *WriteOptions) (*Service, *WriteMeta, error) {
	if err := need("service", service); err != nil {
		return nil, nil, err
	}
	var out Service
	wm, err := s.c.write(ctx, http.MethodDelete, "/v1/services/"+seg(service), nil, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

func versionPath(service, version string) string {
	return "/v1/services/" + seg(service) + "/versions/" + seg(version)
}
