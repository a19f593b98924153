package api

import (
	"context"
	"net/http"
)

// ACL is the handle on the ACL tokens of the registry.
type ACL struct{ c *Client }

// ACL returns the handle on ACL tokens.
func (c *Client) ACL() *ACL { return &ACL{c: c} }

// CreateToken creates a token. Its SecretID is in this answer only.
func (a *ACL) CreateToken(ctx context.Context, req TokenRequest, w *WriteOptions) (*Token, *WriteMeta, error) {
	var out Token
	wm, err := a.c.write(ctx, http.MethodPost, "/v1/acl/tokens", req, &out, w)
	if err != nil {
		return nil, nil, err
	}
	return &out, wm, nil
}

// ListTokens returns every token, without secrets.
func (a *ACL) ListTokens(ctx context.Context, q *QueryOptions) ([]Token, *QueryMeta, error) {
	var out []Token
	qm, err := a.c.query(ctx, "/v1/acl/tokens", nil, &out, q)
	if err != nil {
		return nil, nil, err
	}
	return out, qm, nil
}

// DeleteToken revokes the token with accessorID.
func (a *ACL) DeleteToken(ctx context.Context, accessorID string, w *WriteOptions) (*WriteMeta, error) {
	if err := need("accessor id", accessorID); err != nil {
		return nil, err
	}
	return a.c.write(ctx, http.MethodDelete, "/v1/acl/tokens/"+seg(accessorID), nil, nil, w)
}

// Self returns the token the request is made with, without its secret.
func (a *ACL) Self(ctx context.Context, q *QueryOptions) (*Token, *QueryMeta, error) {
	var out Token
	qm, err := a.c.query(ctx, "/v1/acl/token/self", nil, &out, q)
	if err != nil {
		return nil, nil, err
	}
	return &out, qm, nil
}
