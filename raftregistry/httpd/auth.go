package httpd

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/raftregistry/state"
)

// managementAccessor is the accessor id shown for the configured management
// token, which is not in the token table.
const managementAccessor = "management"

// identity is who a request's token says the caller is.
type identity struct {
	role string
	// node is the agent's node; "" for every other role.
	node string
	// token is the stored token; nil for the configured management token.
	token *state.Token
	// secretHash is the hex SHA-256 of the secret.
	secretHash string
}

// showEnv reports whether the caller may see the env values of a container
// on node.
func (id *identity) showEnv(node string) bool {
	switch id.role {
	case api.RoleManagement, api.RoleOperator:
		return true
	case api.RoleAgent:
		return id.node == node
	}
	return false
}

// showOutput reports whether the caller may see what containers wrote:
// status.message holds a failed container's last output lines, which may
// hold anything, secrets included (docs/design.md §5). Only operator and
// management may; not even the agent of the container's node, which wrote
// the message and needs nothing of it back.
func (id *identity) showOutput() bool {
	return id.role == api.RoleManagement || id.role == api.RoleOperator
}

// container is ct as the caller may see it: env values and the status
// message are redacted by role.
func (id *identity) container(ct *state.Container) api.Container {
	out := ct.API(id.showEnv(ct.Spec.Node))
	if out.Status != nil && out.Status.Message != "" && !id.showOutput() {
		out.Status.Message = state.Redacted
	}
	return out
}

// bearer reads the secret of "Authorization: Bearer <secret>". The secret is
// never logged nor echoed.
func bearer(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", httpErrorf(http.StatusUnauthorized, "missing token: send Authorization: Bearer <token>")
	}
	scheme, secret, ok := strings.Cut(h, " ")
	secret = strings.TrimSpace(secret)
	if !ok || !strings.EqualFold(scheme, "Bearer") || secret == "" {
		return "", httpErrorf(http.StatusUnauthorized, "malformed Authorization header: send Authorization: Bearer <token>")
	}
	return secret, nil
}

// authenticate resolves a secret to an identity: the configured management
// token (compared in constant time), or a stored token found by the hash of
// the secret.
func (s *Server) authenticate(secret string) (*identity, error) {
	sum := sha256.Sum256([]byte(secret))
	hash := hex.EncodeToString(sum[:])
	if s.hasMgmt && subtle.ConstantTimeCompare(sum[:], s.mgmtHash[:]) == 1 {
		return &identity{role: api.RoleManagement, secretHash: hash}, nil
	}
	t := s.store.State().TokenBySecretHash(hash)
	if t == nil {
		return nil, httpErrorf(http.StatusUnauthorized, "unknown token: it does not exist or was revoked")
	}
	return &identity{role: state.RoleAPI(t.Role), node: t.Node, token: t, secretHash: hash}, nil
}

// policy decides whether id may make request r; it returns a 403 when not.
type policy func(id *identity, r *http.Request) error

// anyToken lets every valid token through.
func anyToken(*identity, *http.Request) error { return nil }

// roles lets management and the given roles through.
func roles(allowed ...string) policy {
	need := strings.Join(append(append([]string{}, allowed...), api.RoleManagement), " or ")
	if len(allowed) == 1 && allowed[0] == api.RoleManagement {
		need = api.RoleManagement
	}
	return func(id *identity, r *http.Request) error {
		if id.role == api.RoleManagement {
			return nil
		}
		for _, role := range allowed {
			if id.role == role {
				return nil
			}
		}
		return httpErrorf(http.StatusForbidden, "permission denied: %s needs %s %s token; this token's role is %s",
			describe(r), article(need), need, id.role)
	}
}

// ownNode lets the agent of node {id} and management through.
func ownNode(id *identity, r *http.Request) error {
	if id.role == api.RoleManagement {
		return nil
	}
	node := r.PathValue("id")
	if id.role == api.RoleAgent && id.node == node {
		return nil
	}
	if id.role == api.RoleAgent {
		return httpErrorf(http.StatusForbidden, "permission denied: %s needs the agent token of node %q or a management token; this is the agent token of node %q",
			describe(r), node, id.node)
	}
	return httpErrorf(http.StatusForbidden, "permission denied: %s needs the agent token of node %q or a management token; this token's role is %s",
		describe(r), node, id.role)
}

// statusReporter lets agents and management through; the state store checks
// that an agent reports only on its own node's containers.
func statusReporter(id *identity, r *http.Request) error {
	if id.role == api.RoleManagement || id.role == api.RoleAgent {
		return nil
	}
	return httpErrorf(http.StatusForbidden, "permission denied: %s needs the agent token of the container's node or a management token; this token's role is %s",
		describe(r), id.role)
}

func article(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "an"
	}
	return "a"
}
