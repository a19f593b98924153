package api

import (
	"context"
	"errors"
	"maps"
	"net/url"
	"slices"
)

// RouteRequest names a client and the service it calls, for Client.Route.
type RouteRequest struct {
	// Service is the service called.
	Service string
	// Client is the caller's name (optional).
	Client string
	// ClientVersion is the caller's version.
	ClientVersion string
	// Requires maps a service to the caller's own constraint on its version,
	// e.g. {"orders": "~> 1.4"}.
	Requires map[string]string
}

// Route asks the registry which service version and containers serve req,
// as routing.Select decides it on the registry's table.
func (c *Client) Route(ctx context.Context, req RouteRequest, q *QueryOptions) (*Route, *QueryMeta, error) {
	if req.Service == "" {
		return nil, nil, errors.New("missing service")
	}
	params := url.Values{"service": {req.Service}}
	if req.Client != "" {
		params.Set("client", req.Client)
	}
	if req.ClientVersion != "" {
		params.Set("client_version", req.ClientVersion)
	}
	// Sorted, so that the same request is always the same URL.
	for _, svc := range slices.Sorted(maps.Keys(req.Requires)) {
		params.Add("require", svc+":"+req.Requires[svc])
	}
	var out Route
	qm, err := c.query(ctx, "/v1/route", params, &out, q)
	if err != nil {
		return nil, nil, err
	}
	return &out, qm, nil
}
