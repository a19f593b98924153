// Package state is the registry's state store: its tables (nodes, service
// versions, containers, ACL tokens, registry servers), an index per table,
// the apply of one command at a Raft index, watch sets for blocking queries,
// snapshots, and the pure rules the leader evaluates (retirement, heartbeat
// TTLs).
//
// It must not import hashicorp/raft, read the clock or start goroutines: the
// FSM in package raftregistry delegates to it, and the simulator drives the
// very same code from a virtual clock. Every time it needs comes in a command
// (set by the leader that proposed it) or as an argument.
//
// Records are copy-on-write: a stored record is never mutated, so readers may
// keep the pointers they were given.
package state
