// Package routing is the one place where compatibility is decided: which
// service version, and which of its containers, serves client C calling
// service S (docs/design.md §4).
//
// It owns the routing rule and nothing else:
//
//   - Table, an immutable snapshot of services, containers and nodes, parsed
//     once by NewTable so that the hot path never parses a version or a range;
//   - Select, the rule itself, and Candidates, the same rule explained;
//   - Admit, the gateway's admission decision for a call that may name a
//     container chosen from a stale table.
//
// Everything here is a pure function of its arguments, so the SDK, the
// gateway, the provider and the simulator share one implementation. The
// package must not do I/O, read clocks, start goroutines or draw from a
// global random source: randomness comes in through Rand. It imports only the
// standard library, api and hashicorp/go-version; it must not import any
// other package of this module.
//
// Select allocates nothing. go-version's Constraints.Check does allocate, so
// the Table and a Client built by ParseClient or NewClient carry a compiled
// form of every version and range (semver.go) that reproduces go-version's
// answers exactly; a test compares the two over a large set of versions and
// ranges.
package routing
