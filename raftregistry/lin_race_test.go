//go:build race

package raftregistry

// linRace is true under the race detector, which makes every round several
// times slower: the linearizability rounds then record fewer operations each
// (never fewer rounds).
const linRace = true
