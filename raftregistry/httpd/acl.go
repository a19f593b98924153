package httpd

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/raftregistry/state"
)

func (s *Server) createToken(w http.ResponseWriter, r *http.Request, c *call) error {
	var req api.TokenRequest
	if err := decodeJSON(c.body, &req); err != nil {
		return err
	}
	secret := newSecret()
	sum := sha256.Sum256([]byte(secret))
	cmd := &state.CreateToken{AccessorID: newUUID(), SecretHash: hex.EncodeToString(sum[:]),
		Role: state.RoleFromAPI(req.Role), Node: req.Node, Description: req.Description}
	if err := state.ValidateToken(cmd); err != nil {
		return err
	}
	val, err := s.apply(w, r, cmd)
	if err != nil {
		return err
	}
	t, err := written(val, func() *state.Token { return s.store.State().TokenBySecretHash(cmd.SecretHash) })
	if err != nil {
		return err
	}
	out := t.API()
	// The only time the secret is ever shown.
	out.SecretID = secret
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request, c *call) error {
	return s.blocking(w, r, c, func(st *state.Store) (uint64, state.WatchSet, any, error) {
		_, ws := st.Watch(state.TableTokens)
		idx, ts := st.Tokens()
		out := make([]api.Token, 0, len(ts))
		for _, t := range ts {
			out = append(out, t.API())
		}
		return idx, ws, out, nil
	})
}

func (s *Server) deleteToken(w http.ResponseWriter, r *http.Request, _ *call) error {
	id := r.PathValue("accessor_id")
	if _, err := s.apply(w, r, &state.DeleteToken{AccessorID: id}); err != nil {
		return err
	}
	writeEmpty(w)
	return nil
}

// tokenSelf answers the caller's own token, without its secret.
func (s *Server) tokenSelf(w http.ResponseWriter, r *http.Request, c *call) error {
	return s.blocking(w, r, c, func(st *state.Store) (uint64, state.WatchSet, any, error) {
		idx, ws := st.Watch(state.TableTokens)
		if c.id.token == nil {
			return idx, ws, api.Token{AccessorID: managementAccessor, Role: api.RoleManagement}, nil
		}
		t := st.TokenBySecretHash(c.id.secretHash)
		if t == nil {
			return idx, ws, nil, fmt.Errorf("token was revoked: %w", state.ErrNotFound)
		}
		return idx, ws, t.API(), nil
	})
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// newSecret returns 32 random bytes in hex.
func newSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
