package httpd

import (
	"bytes"
	"errors"
	"io"
	"net/http"

	"github.com/coexist-dev/coexist/raftregistry/state"
)

// maxSnapshot caps the body of PUT /v1/snapshot.
const maxSnapshot = 1 << 30

// saveSnapshot streams a consistent snapshot of the state.
func (s *Server) saveSnapshot(w http.ResponseWriter, r *http.Request, _ *call) error {
	rc, err := s.store.Snapshot(r.Context())
	if err != nil {
		return err
	}
	defer rc.Close()
	s.setReadHeaders(w, s.store.State().Index(state.Tables()...))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, rc); err != nil {
		// Too late for an error answer: the client sees a cut body.
		s.logger.Warn("snapshot cut short", "error", err)
	}
	return nil
}

// restoreSnapshot replaces the whole state with the snapshot in the body. The
// snapshot is read and checked here first, so that a broken file is a 400
// and never reaches Raft.
func (s *Server) restoreSnapshot(w http.ResponseWriter, r *http.Request, _ *call) error {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSnapshot))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return mbe
		}
		return httpErrorf(http.StatusBadRequest, "read snapshot: %v", err)
	}
	if _, err := state.ReadSnapshot(bytes.NewReader(data)); err != nil {
		return httpErrorf(http.StatusBadRequest, "snapshot is not valid: %v", err)
	}
	if err := s.store.Restore(r.Context(), bytes.NewReader(data)); err != nil {
		return err
	}
	s.setWriteIndex(w)
	writeEmpty(w)
	return nil
}
