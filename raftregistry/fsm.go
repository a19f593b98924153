package raftregistry

import (
	"fmt"
	"io"

	"github.com/coexist-dev/coexist/raftregistry/state"
	"github.com/hashicorp/raft"
)

// fsm is the Raft FSM: a thin wrapper whose every method delegates to the
// state store.
type fsm struct {
	st *state.Store
}

var _ raft.FSM = (*fsm)(nil)

// Apply decodes one log entry and applies it. An entry that cannot be decoded
// means this server cannot follow the log safely: it panics rather than
// diverge. A valid command the store rejects returns its error in the Result.
func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	cmd, err := state.Decode(l.Data)
	if err != nil {
		panic(fmt.Sprintf("raft log entry %d: %v", l.Index, err))
	}
	if cmd == nil {
		// An unknown command type flagged as ignorable.
		return state.Result{Index: l.Index}
	}
	return f.st.Apply(l.Index, cmd)
}

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{snap: f.st.Snapshot()}, nil
}

func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	snap, err := state.ReadSnapshot(rc)
	if err != nil {
		return err
	}
	f.st.Restore(snap)
	return nil
}

type fsmSnapshot struct {
	snap *state.Snapshot
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.snap.Persist(sink); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() {}
