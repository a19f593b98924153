// Package hostbed is a test bed of many hosts on one machine: each host is a
// network namespace, joined to the others by a veth pair on a private bridge,
// with its own address in a /24 of 10.213.0.0/16 that the bed owns. Nothing
// routes off the machine: the namespaces have no default route, the bridge is
// attached to no real interface, and the machine's own namespace takes part
// only as the control host (the bridge's address, .1), from which the test
// drives the registry and checks it.
//
// On the bed run the real `coexist server` and `coexist agent` processes and
// SDK clients (a test binary re-executed inside a client host, see
// RunClient), and a nemesis breaks them on a seeded schedule: partitions and
// one-way cuts and packet loss (nft rules inside the namespaces), kill -9
// and restart, SIGSTOP and SIGCONT, and a full disk (a small tmpfs for a
// server's data dir). After a run the checks of check.go say whether any
// acknowledged write was lost, whether the registry's history is
// linearizable (internal/linearize), whether a call failed that had a
// compatible version within reach, whether a container restarted, and how
// long the cluster took to converge after each heal.
//
// Every namespace, link and mount the bed makes carries the creating
// process's id in its name (cxbed-<pid>-..., cxbr<pid>, cxv<pid>h<n>), so that
// Sweep removes what a killed run left behind without touching a live one.
//
// It needs root, ip (iproute2) and nft (nftables); Available says why not.
// It imports api, client and internal/linearize of the module, and nothing of
// the registry or the agent: it runs them as processes.
package hostbed
