// Package raftregistry is the registry's replicated store: hashicorp/raft
// with raft-boltdb/v2 for the log and stable store, file snapshots and a TCP
// transport, an FSM that delegates every command to raftregistry/state,
// membership (bootstrap, join, remove), leadership transfer on shutdown, and
// the leader's own duties: heartbeat TTLs and retiring drained versions.
//
// It must not import the HTTP layer, the node agent, the client SDK or the
// provider; they speak to the registry over the API.
package raftregistry
