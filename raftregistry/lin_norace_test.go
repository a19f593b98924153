//go:build !race

package raftregistry

// linRace is true under the race detector; see lin_race_test.go.
const linRace = false
