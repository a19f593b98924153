// Package sim is coexist's deterministic simulator: whole fleets — registry,
// nodes, containers, clients and the network between them — in one process,
// on a virtual clock, driven by scenarios (HCL files or the Go builder), with
// the invariants of docs/design.md §9 checked on every event.
//
// It reuses the pure cores and simulates only what surrounds them:
//
//   - the registry is one real raftregistry/state.Store fed an ordered log of
//     commands, each committed after a sampled latency; leader-loss windows
//     stall writes; the leader's duties (DueRetirements, Heartbeats) run as
//     events; watchers see the committed state after a per-watcher delay;
//   - every node runs the real reconciler (reconcile.Plan) against a simulated
//     driver (sampled start and stop times, health outcome, crashes), and its
//     gateway takes the real admission decision (routing.Admit) on a table
//     built the way the agent builds it: the registry's view with the node's
//     own containers overlaid by the agent's local state;
//   - every client runs the real routing.Select on its own, possibly stale,
//     table and retries, as the SDK does, only what was refused as safe;
//   - the network samples latencies, loses connection attempts and partitions
//     groups of endpoints.
//
// One event loop, one goroutine: events are ordered by (virtual time,
// sequence number); every random draw comes from one seeded math/rand/v2
// source; maps are walked in sorted order wherever the order matters. The
// same scenario and seed therefore give the same run, which the trace hash
// (a running 64-bit FNV-1a over one canonical record per event) shows.
//
// sim imports the pure cores (routing, raftregistry/state, node's
// reconciler) and api. Nothing imports sim but its tests and cmd/coexist.
package sim
