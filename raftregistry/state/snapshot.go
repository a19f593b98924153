package state

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
)

// snapshotVersion is written first in every snapshot, so a future layout can
// be told apart.
const snapshotVersion = 1

// Snapshot is a point-in-time copy of every table, safe to persist while the
// store keeps applying.
type Snapshot struct {
	Version    int               `json:"version"`
	LastIndex  uint64            `json:"last_index"`
	Indexes    map[string]uint64 `json:"indexes"`
	Nodes      []*Node           `json:"nodes"`
	Versions   []*ServiceVersion `json:"versions"`
	Containers []*Container      `json:"containers"`
	Tokens     []*Token          `json:"tokens"`
	Servers    []*Server         `json:"servers"`
}

// Snapshot copies the store. Records are copy-on-write, so copying the
// pointers is enough.
func (s *Store) Snapshot() *Snapshot {
	s.mu.RLock()
	defer s.mu.RUnlock()
	snap := &Snapshot{
		Version:   snapshotVersion,
		LastIndex: s.lastIndex,
		Indexes:   make(map[string]uint64, numTables),
		Nodes:     sortedValues(s.nodes, func(a, b *Node) int { return cmp.Compare(a.ID, b.ID) }),
		Versions:  slices.SortedFunc(slices.Values(s.allVersions()), compareVersions),
		Containers: sortedValues(s.containers, func(a, b *Container) int {
			return cmp.Compare(a.ID, b.ID)
		}),
		Tokens:  sortedValues(s.tokens, func(a, b *Token) int { return cmp.Compare(a.AccessorID, b.AccessorID) }),
		Servers: sortedValues(s.servers, func(a, b *Server) int { return cmp.Compare(a.ID, b.ID) }),
	}
	for _, t := range Tables() {
		snap.Indexes[t.String()] = s.indexes[t]
	}
	return snap
}

// Persist writes the snapshot as JSON.
func (snap *Snapshot) Persist(w io.Writer) error {
	if err := json.NewEncoder(w).Encode(snap); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	return nil
}

// ReadSnapshot reads a snapshot written by Persist.
func ReadSnapshot(r io.Reader) (*Snapshot, error) {
	var snap Snapshot
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&snap); err != nil {
		return nil, fmt.Errorf("read snapshot: %w", err)
	}
	if snap.Version != snapshotVersion {
		return nil, fmt.Errorf("read snapshot: unsupported version %d", snap.Version)
	}
	return &snap, nil
}

// Restore replaces every table with the snapshot's and wakes every watcher.
func (s *Store) Restore(snap *Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reset()
	for _, n := range snap.Nodes {
		s.nodes[n.ID] = n
	}
	for _, v := range snap.Versions {
		s.putVersion(v)
	}
	for _, c := range snap.Containers {
		s.containers[c.ID] = c
	}
	for _, t := range snap.Tokens {
		s.tokens[t.AccessorID] = t
		s.tokenHash[t.SecretHash] = t
	}
	for _, sv := range snap.Servers {
		s.servers[sv.ID] = sv
	}
	s.lastIndex = snap.LastIndex
	for _, t := range Tables() {
		s.indexes[t] = snap.Indexes[t.String()]
	}
}

// Equal reports whether two snapshots hold the same records and indexes.
func (snap *Snapshot) Equal(o *Snapshot) bool {
	a, err1 := json.Marshal(snap)
	b, err2 := json.Marshal(o)
	return err1 == nil && err2 == nil && slices.Equal(a, b)
}
