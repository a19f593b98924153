package state

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Purging: a retired version stays in the table (declaring it again is a
// rollback) until an operator purges it. Only a retired version that no
// container holds can go: a container naming a version that is not declared
// could never be declared again, and one still running it would be left with
// nothing to drain.

func (s *Store) purgeVersion(index uint64, c *PurgeVersion) (*ServiceVersion, error) {
	old := s.version(VersionKey{c.Service, c.Version})
	if old == nil {
		return nil, notFound("version %s of service %q", c.Version, c.Service)
	}
	if why := s.unpurgeable(old); why != "" {
		return nil, conflict("version %s of service %q %s", c.Version, c.Service, why)
	}
	s.removeVersion(old)
	s.touch(TableServices, index)
	return old, nil
}

func (s *Store) purgeService(index uint64, c *PurgeService) ([]*ServiceVersion, error) {
	m := s.versions[c.Service]
	if len(m) == 0 {
		return nil, notFound("service %q has no version declared", c.Service)
	}
	vs := make([]*ServiceVersion, 0, len(m))
	for _, v := range m {
		vs = append(vs, v)
	}
	slices.SortFunc(vs, compareVersions)
	var why []string
	for _, v := range vs {
		if w := s.unpurgeable(v); w != "" {
			why = append(why, "version "+v.Version+" "+w)
		}
	}
	if len(why) > 0 {
		return nil, conflict("service %q cannot be purged: %s", c.Service, strings.Join(why, "; "))
	}
	for _, v := range vs {
		s.removeVersion(v)
	}
	s.touch(TableServices, index)
	return vs, nil
}

// unpurgeable says why v cannot be purged ("is active: ..."), or "".
func (s *Store) unpurgeable(v *ServiceVersion) string {
	if v.State != VersionRetired {
		return fmt.Sprintf("is %s: only a retired version can be purged (retire it and wait until it is retired)", v.State)
	}
	var ids []string
	k := v.Key()
	for id, ct := range s.containers {
		if slices.Contains(ct.Spec.Services, k) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return ""
	}
	slices.SortFunc(ids, cmp.Compare)
	const named = 3
	list := strings.Join(ids[:min(len(ids), named)], ", ")
	if len(ids) > named {
		list += fmt.Sprintf(" and %d more", len(ids)-named)
	}
	if len(ids) == 1 {
		return fmt.Sprintf("is held by container %s: delete it first, and purge once it has left the table", list)
	}
	return fmt.Sprintf("is held by containers %s: delete them first, and purge once they have left the table", list)
}

// removeVersion deletes a version record and its service once it has none.
// Callers hold s.mu for writing.
func (s *Store) removeVersion(v *ServiceVersion) {
	m := s.versions[v.Service]
	if _, ok := m[v.Version]; !ok {
		return
	}
	delete(m, v.Version)
	s.nversions--
	if len(m) == 0 {
		delete(s.versions, v.Service)
	}
	delete(s.draining, v.Key())
}
