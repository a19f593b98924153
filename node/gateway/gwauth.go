package gateway

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coexist-dev/coexist/api"
)

// Checking the tokens of callers of the gateway's /v1/metrics with the
// registry: the agent knows no token but its own, so it asks the registry
// about each new one (GET /v1/acl/token/self with that token), and keeps the
// answer a while. Any token the registry knows is admitted, of any role, as
// the registry's own /v1/metrics admits it.
const (
	// tokenTTL is how long an admitted token is admitted without asking
	// again: a revoked token reads the metrics this long at most.
	tokenTTL = 30 * time.Second
	// maxCachedTokens bounds the admitted tokens kept (as SHA-256 hashes).
	maxCachedTokens = 256
	// maxTokenChecks bounds the registry lookups in progress: a caller
	// trying tokens gets 503s rather than load the registry.
	maxTokenChecks = 4
	// maxTokenLen: a longer secret is refused without asking.
	maxTokenLen = 256
	// tokenCheckTimeout bounds one lookup.
	tokenCheckTimeout = 5 * time.Second
)

var (
	// errTokenChecksBusy: too many lookups are in progress.
	errTokenChecksBusy = errors.New("too many token checks in progress")
	// ErrForbidden: the token is known but its role may not do this; the
	// agent answers 403.
	ErrForbidden = errors.New("forbidden")
)

// admission is what is kept of an admitted token.
type admission struct {
	until time.Time
	role  string
}

// RegistryTokens admits the tokens a registry knows.
type RegistryTokens struct {
	self func(ctx context.Context, secret string) (role string, err error) // asks the registry
	now  func() time.Time
	sem  chan struct{}

	mu       sync.Mutex
	admitted map[[sha256.Size]byte]admission
}

// RegistryTokensOf admits the tokens client's registry knows: its
// authorize is the agent's GatewayConfig.Authorize.
func RegistryTokensOf(client *api.Client) *RegistryTokens {
	return newRegistryTokens(func(ctx context.Context, secret string) (string, error) {
		t, _, err := client.ACL().Self(ctx, &api.QueryOptions{AuthToken: secret})
		if err != nil {
			return "", err
		}
		return t.Role, nil
	}, time.Now)
}

func newRegistryTokens(self func(ctx context.Context, secret string) (string, error), now func() time.Time) *RegistryTokens {
	return &RegistryTokens{self: self, now: now, sem: make(chan struct{}, maxTokenChecks),
		admitted: make(map[[sha256.Size]byte]admission)}
}

// Authorize admits a token the registry knows, of any role.
func (rt *RegistryTokens) Authorize(ctx context.Context, secret string) error {
	_, err := rt.role(ctx, secret)
	return err
}

// AuthorizeRole admits a token the registry knows whose role is one of
// roles; a known token of another role gets ErrForbidden.
func (rt *RegistryTokens) AuthorizeRole(ctx context.Context, secret string, roles ...string) error {
	role, err := rt.role(ctx, secret)
	if err != nil {
		return err
	}
	for _, r := range roles {
		if r == role {
			return nil
		}
	}
	return fmt.Errorf("%w: a %s token may not do this; it takes a token of role %s", ErrForbidden, role, strings.Join(roles, " or "))
}

// role returns the role of a token the registry knows.
func (rt *RegistryTokens) role(ctx context.Context, secret string) (string, error) {
	if secret == "" || len(secret) > maxTokenLen {
		return "", ErrUnauthorized
	}
	h := sha256.Sum256([]byte(secret))
	rt.mu.Lock()
	adm, ok := rt.admitted[h]
	rt.mu.Unlock()
	if ok && rt.now().Before(adm.until) {
		return adm.role, nil
	}
	select {
	case rt.sem <- struct{}{}:
		defer func() { <-rt.sem }()
	default:
		return "", errTokenChecksBusy
	}
	ctx, cancel := context.WithTimeout(ctx, tokenCheckTimeout)
	defer cancel()
	role, err := rt.self(ctx, secret)
	if err != nil {
		var se *api.StatusError
		if errors.As(err, &se) && (se.Code == http.StatusUnauthorized || se.Code == http.StatusForbidden) {
			return "", ErrUnauthorized
		}
		return "", fmt.Errorf("check token with the registry: %w", err)
	}
	now := rt.now()
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if len(rt.admitted) >= maxCachedTokens {
		for k, a := range rt.admitted {
			if !now.Before(a.until) {
				delete(rt.admitted, k)
			}
		}
		if len(rt.admitted) >= maxCachedTokens {
			clear(rt.admitted)
		}
	}
	rt.admitted[h] = admission{until: now.Add(tokenTTL), role: role}
	return role, nil
}
