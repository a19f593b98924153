// Package reconcile is the node's pure core (docs/design.md §3): the
// reconciler (Plan: desired and observed state to actions), a container's
// local life-cycle (Phase, Local), its restart policy (NextRestart,
// RecordExit), the status it reports (Status) and the gateway's overlay of
// the agent's own observation (Overlay).
//
// It reads no clock and starts no goroutines: time is passed in. The agent
// (package node) wraps it in goroutines, a driver and timers; the simulator
// runs the same functions on its virtual clock.
package reconcile
