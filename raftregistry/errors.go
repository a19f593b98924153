package raftregistry

import (
	"errors"

	"github.com/coexist-dev/coexist/raftregistry/state"
)

// Sentinel errors of the Store. The state store's sentinels are aliased here
// so that errors.Is works across layers without importing state.
var (
	// ErrNotLeader means the write or consistent read must go to the leader.
	ErrNotLeader = errors.New("not the leader")
	// ErrNoLeader means no leader is known right now; try again later.
	ErrNoLeader = errors.New("no leader known")
	// ErrShutdown means the store is shutting down.
	ErrShutdown = errors.New("store is shut down")
	// ErrLeadershipLost means leadership was lost after the write was
	// proposed: it may or may not have been applied.
	ErrLeadershipLost = errors.New("leadership lost while the write was in flight; it may or may not have been applied")
	// ErrTimeout means Raft did not commit in time; the write may or may not
	// have been applied.
	ErrTimeout = errors.New("timed out waiting for raft")

	ErrNotFound   = state.ErrNotFound
	ErrConflict   = state.ErrConflict
	ErrInvalid    = state.ErrInvalid
	ErrPermission = state.ErrPermission
)
