// Package node is the node agent: it watches the registry for the containers
// of its node, plans with the pure reconciler (package node/reconcile),
// carries the plan out through a driver, health-checks, drains, reports
// observed state and heartbeats; and it runs the node's gateway (package
// node/gateway), through which every call enters the node.
//
// It speaks to the registry only through package api, never raftregistry.
// The decisions (reconcile.Plan, and the gateway's admit.Decide) are pure
// functions of their inputs, with time passed in, so that the simulator can
// drive them from a virtual clock.
package node
