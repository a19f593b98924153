package node

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
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

// errTokenChecksBusy: too many lookups are in progress.
var errTokenChecksBusy = errors.New("too many token checks in progress")

// registryTokens admits the tokens a registry knows.
type registryTokens struct {
	self func(ctx context.Context, secret string) error // asks the registry
	now  func() time.Time
	sem  chan struct{}

	mu       sync.Mutex
	admitted map[[sha256.Size]byte]time.Time // until when
}

// RegistryAuthorizer returns a GatewayConfig.Authorize that admits the
// tokens client's registry knows, of any role.
func RegistryAuthorizer(client *api.Client) func(ctx context.Context, secret string) error {
	return newRegistryTokens(func(ctx context.Context, secret string) error {
		_, _, err := client.ACL().Self(ctx, &api.QueryOptions{AuthToken: secret})
		return err
	}, time.Now).authorize
}

func newRegistryTokens(self func(ctx context.Context, secret string) error, now func() time.Time) *registryTokens {
	return &registryTokens{self: self, now: now, sem: make(chan struct{}, maxTokenChecks),
		admitted: make(map[[sha256.Size]byte]time.Time)}
}

func (rt *registryTokens) authorize(ctx context.Context, secret string) error {
	if secret == "" || len(secret) > maxTokenLen {
		return ErrUnauthorized
	}
	h := sha256.Sum256([]byte(secret))
	rt.mu.Lock()
	until, ok := rt.admitted[h]
	rt.mu.Unlock()
	if ok && rt.now().Before(until) {
		return nil
	}
	select {
	case rt.sem <- struct{}{}:
		defer func() { <-rt.sem }()
	default:
		return errTokenChecksBusy
	}
	ctx, cancel := context.WithTimeout(ctx, tokenCheckTimeout)
	defer cancel()
	if err := rt.self(ctx, secret); err != nil {
		var se *api.StatusError
		if errors.As(err, &se) && (se.Code == http.StatusUnauthorized || se.Code == http.StatusForbidden) {
			return ErrUnauthorized
		}
		return fmt.Errorf("check token with the registry: %w", err)
	}
	now := rt.now()
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if len(rt.admitted) >= maxCachedTokens {
		for k, until := range rt.admitted {
			if !now.Before(until) {
				delete(rt.admitted, k)
			}
		}
		if len(rt.admitted) >= maxCachedTokens {
			clear(rt.admitted)
		}
	}
	rt.admitted[h] = now.Add(tokenTTL)
	return nil
}
