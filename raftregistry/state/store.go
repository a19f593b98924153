package state

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sync"

	version "github.com/hashicorp/go-version"
)

// Result is what applying one command gives: the record it wrote (or found
// unchanged) and the error that rejected it.
type Result struct {
	Index uint64
	Value any
	Err   error
}

// Store holds the registry's tables in memory.
type Store struct {
	mu sync.RWMutex

	nodes      map[string]*Node
	versions   map[string]map[string]*ServiceVersion // service -> version -> record
	draining   map[VersionKey]struct{}               // the versions in state draining
	nversions  int
	containers map[string]*Container
	tokens     map[string]*Token  // by accessor id
	tokenHash  map[string]*Token  // by secret hash
	servers    map[string]*Server // by raft server id

	lastIndex uint64
	indexes   [numTables]uint64
	watches   [numTables]chan struct{}
}

// New returns an empty store.
func New() *Store {
	s := &Store{}
	s.reset()
	return s
}

func (s *Store) reset() {
	s.nodes = map[string]*Node{}
	s.versions = map[string]map[string]*ServiceVersion{}
	s.draining = map[VersionKey]struct{}{}
	s.nversions = 0
	s.containers = map[string]*Container{}
	s.tokens = map[string]*Token{}
	s.tokenHash = map[string]*Token{}
	s.servers = map[string]*Server{}
	s.lastIndex = 0
	s.indexes = [numTables]uint64{}
	for i := range s.watches {
		if s.watches[i] != nil {
			close(s.watches[i])
		}
		s.watches[i] = make(chan struct{})
	}
}

// touch records that table t changed at index and wakes its watchers. Callers
// hold s.mu for writing.
func (s *Store) touch(t Table, index uint64) {
	s.indexes[t] = index
	close(s.watches[t])
	s.watches[t] = make(chan struct{})
}

// LastIndex is the index of the last command applied, changed or not.
func (s *Store) LastIndex() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.lastIndex
}

// Index returns the highest index of the given tables, never below 1, so that
// a blocking query on a table never written does not spin.
func (s *Store) Index(tables ...Table) uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.index(tables)
}

func (s *Store) index(tables []Table) uint64 {
	var idx uint64 = 1
	for _, t := range tables {
		idx = max(idx, s.indexes[t])
	}
	return idx
}

// WatchSet is a set of channels, one per table read; any of them is closed
// when its table changes.
type WatchSet []<-chan struct{}

// Watch returns the current index of the given tables and the channels that
// will be closed when any of them next changes.
func (s *Store) Watch(tables ...Table) (uint64, WatchSet) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ws := make(WatchSet, len(tables))
	for i, t := range tables {
		ws[i] = s.watches[t]
	}
	return s.index(tables), ws
}

// Apply applies one command at a Raft index. A command the store rejects
// comes back as Result.Err and changes nothing.
func (s *Store) Apply(index uint64, cmd Command) Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	if index > s.lastIndex {
		s.lastIndex = index
	}
	var v any
	var err error
	switch c := cmd.(type) {
	case *RegisterNode:
		v, err = s.registerNode(index, c)
	case *SetNodeStatus:
		v, err = s.setNodeStatus(index, c)
	case *PurgeNode:
		v, err = s.purgeNode(index, c)
	case *DeclareVersion:
		v, err = s.declareVersion(index, c)
	case *RetireVersion:
		v, err = s.retireVersion(index, c)
	case *MarkRetired:
		v, err = s.markRetired(index, c)
	case *PutContainer:
		v, err = s.putContainer(index, c)
	case *DeleteContainer:
		v, err = s.deleteContainer(index, c)
	case *SetContainerStatus:
		v, err = s.setContainerStatus(index, c)
	case *CreateToken:
		v, err = s.createToken(index, c)
	case *DeleteToken:
		v, err = s.deleteToken(index, c)
	case *SetServer:
		v, err = s.setServer(index, c)
	case *RemoveServer:
		v, err = s.removeServer(index, c)
	case *PurgeVersion:
		v, err = s.purgeVersion(index, c)
	case *PurgeService:
		v, err = s.purgeService(index, c)
	default:
		err = fmt.Errorf("apply: unknown command %T", cmd)
	}
	return Result{Index: index, Value: v, Err: err}
}

func (s *Store) registerNode(index uint64, c *RegisterNode) (*Node, error) {
	if err := ValidateNode(c); err != nil {
		return nil, err
	}
	old := s.nodes[c.ID]
	labels := c.Labels
	if len(labels) == 0 {
		labels = nil
	}
	if old != nil && old.Address == c.Address && old.Gateway == c.Gateway &&
		maps.Equal(old.Labels, labels) && old.Status == NodeReady {
		return old, nil
	}
	n := &Node{ID: c.ID, Address: c.Address, Gateway: c.Gateway, Labels: labels,
		Status: NodeReady, CreateIndex: index, ModifyIndex: index}
	if old != nil {
		n.CreateIndex = old.CreateIndex
	}
	s.nodes[c.ID] = n
	s.touch(TableNodes, index)
	return n, nil
}

func (s *Store) setNodeStatus(index uint64, c *SetNodeStatus) (*Node, error) {
	if c.Status != NodeReady && c.Status != NodeDown {
		return nil, invalid("status", "%q is not one of ready, down", c.Status)
	}
	old := s.nodes[c.ID]
	if old == nil {
		return nil, notFound("node %q", c.ID)
	}
	if old.Status == c.Status {
		return old, nil
	}
	n := *old
	n.Status = c.Status
	n.ModifyIndex = index
	s.nodes[c.ID] = &n
	s.touch(TableNodes, index)
	return &n, nil
}

func (s *Store) purgeNode(index uint64, c *PurgeNode) (*Node, error) {
	old := s.nodes[c.ID]
	if old == nil {
		return nil, notFound("node %q", c.ID)
	}
	if c.OnlyIfDown && old.Status != NodeDown {
		n := 0
		for _, ct := range s.containers {
			if ct.Spec.Node == c.ID {
				n++
			}
		}
		return nil, conflict("node %q is %s: its agent is alive, and purging it would stop its %d container(s) under their calls; "+
			"a purge is for a node that is down (stop its agent first, or delete its containers so that they drain), "+
			"or pass ?force=true to purge it anyway", c.ID, old.Status, n)
	}
	delete(s.nodes, c.ID)
	s.touch(TableNodes, index)
	removed := false
	for id, ct := range s.containers {
		if ct.Spec.Node == c.ID {
			delete(s.containers, id)
			removed = true
		}
	}
	if removed {
		s.touch(TableContainers, index)
	}
	return old, nil
}

func (s *Store) declareVersion(index uint64, c *DeclareVersion) (*ServiceVersion, error) {
	if err := validateDeclareVersion(c, logRules); err != nil {
		return nil, err
	}
	k := VersionKey{c.Service, c.Version}
	old := s.version(k)
	if err := checkVersionCAS(old, c); err != nil {
		return nil, err
	}
	if old != nil && old.State == VersionActive && old.Clients == c.Clients && old.Description == c.Description {
		return old, nil
	}
	v := &ServiceVersion{Service: c.Service, Version: c.Version, Clients: c.Clients,
		Description: c.Description, State: VersionActive, CreateIndex: index, ModifyIndex: index}
	if old != nil {
		v.CreateIndex = old.CreateIndex
	}
	s.putVersion(v)
	s.touch(TableServices, index)
	return v, nil
}

// checkVersionCAS refuses a check-and-set declaration whose version is not
// at the index it names: cas=0 means it must not exist, in any state.
func checkVersionCAS(old *ServiceVersion, c *DeclareVersion) error {
	switch {
	case c.CAS == nil:
		return nil
	case old == nil && *c.CAS != 0:
		return conflict("version %s of service %q does not exist (cas=%d)", c.Version, c.Service, *c.CAS)
	case old != nil && *c.CAS != old.ModifyIndex:
		return conflict("version %s of service %q exists (%s) at modify index %d, not %d", c.Version, c.Service, old.State, old.ModifyIndex, *c.CAS)
	}
	return nil
}

func (s *Store) retireVersion(index uint64, c *RetireVersion) (*ServiceVersion, error) {
	k := VersionKey{c.Service, c.Version}
	old := s.version(k)
	if old == nil {
		return nil, notFound("version %s of service %q", c.Version, c.Service)
	}
	if old.State != VersionActive {
		return old, nil
	}
	v := *old
	v.State = VersionDraining
	now := c.Now
	v.DrainStartedAt = &now
	v.ModifyIndex = index
	s.putVersion(&v)
	s.touch(TableServices, index)
	return &v, nil
}

func (s *Store) markRetired(index uint64, c *MarkRetired) ([]*ServiceVersion, error) {
	var out []*ServiceVersion
	for _, due := range c.Versions {
		k := VersionKey{due.Service, due.Version}
		old := s.version(k)
		if old == nil || old.State != VersionDraining || old.ModifyIndex != due.ModifyIndex {
			continue
		}
		v := *old
		v.State = VersionRetired
		v.DrainStartedAt = nil
		now := c.Now
		v.RetiredAt = &now
		v.ModifyIndex = index
		s.putVersion(&v)
		out = append(out, &v)
	}
	if len(out) > 0 {
		s.touch(TableServices, index)
	}
	return out, nil
}

func (s *Store) putContainer(index uint64, c *PutContainer) (*Container, error) {
	if err := validateContainer(c.ID, &c.Spec, logRules); err != nil {
		return nil, err
	}
	if s.nodes[c.Spec.Node] == nil {
		return nil, invalid("node", "node %q is not registered (nodes register when their agent starts)", c.Spec.Node)
	}
	for i, ref := range c.Spec.Services {
		if s.version(ref) == nil {
			return nil, invalid(fmt.Sprintf("services[%d].version", i), "version %s of service %q is not declared", ref.Version, ref.Service)
		}
	}
	old := s.containers[c.ID]
	if old == nil {
		if c.CAS != nil && *c.CAS != 0 {
			return nil, conflict("container %q does not exist (cas=%d)", c.ID, *c.CAS)
		}
	} else {
		if c.CAS != nil && *c.CAS != old.ModifyIndex {
			return nil, conflict("container %q is at modify index %d, not %d", c.ID, old.ModifyIndex, *c.CAS)
		}
		same := old.Spec.Equal(&c.Spec)
		if same && old.Desired == DesiredPresent {
			return old, nil
		}
		if !same && c.CAS == nil {
			return nil, conflict("container %q exists with a different body; containers are not changed in place: declare a new one, or write with ?cas=%d", c.ID, old.ModifyIndex)
		}
		// Changing what runs would stop the process under its calls
		// (docs/design.md §5: every stop drains); a new container beside
		// it takes over without a failed call.
		if field := old.Spec.RunChange(&c.Spec); field != "" {
			return nil, conflict("container %q: %s differs, and what a container runs is not changed in place "+
				"(its process would stop without draining): declare a new container, and delete this one once the new one serves; "+
				"only drain_timeout and restart change in place", c.ID, field)
		}
	}
	// A container holding a retired version would never start, and its
	// agent would have nothing to do but report it stopped.
	for i, ref := range c.Spec.Services {
		if v := s.version(ref); v.State == VersionRetired {
			return nil, invalid(fmt.Sprintf("services[%d].version", i), "%s %s is retired; declare it again to roll back", ref.Service, ref.Version)
		}
	}
	ct := &Container{ID: c.ID, Spec: c.Spec, Desired: DesiredPresent, CreateIndex: index, ModifyIndex: index}
	if old != nil {
		ct.CreateIndex = old.CreateIndex
		ct.Status = old.Status
	}
	s.containers[c.ID] = ct
	s.touch(TableContainers, index)
	return ct, nil
}

func (s *Store) deleteContainer(index uint64, c *DeleteContainer) (*Container, error) {
	old := s.containers[c.ID]
	if old == nil {
		return nil, notFound("container %q", c.ID)
	}
	if old.Desired == DesiredDeleted {
		return old, nil
	}
	ct := *old
	ct.Desired = DesiredDeleted
	ct.ModifyIndex = index
	if reapable(&ct) {
		delete(s.containers, c.ID)
	} else {
		s.containers[c.ID] = &ct
	}
	s.touch(TableContainers, index)
	return &ct, nil
}

// reapable reports whether a deleted container can leave the table: its agent
// never started it, or has reported it stopped.
func reapable(c *Container) bool {
	return c.Desired == DesiredDeleted &&
		(c.Status == nil || c.Status.State == ContainerStopped)
}

func (s *Store) setContainerStatus(index uint64, c *SetContainerStatus) (*Container, error) {
	if err := ValidateStatus(&c.Status); err != nil {
		return nil, err
	}
	old := s.containers[c.ID]
	if old == nil {
		return nil, notFound("container %q", c.ID)
	}
	if c.Node != "" && c.Node != old.Spec.Node {
		return nil, fmt.Errorf("container %q is on node %q, not %q: %w", c.ID, old.Spec.Node, c.Node, ErrPermission)
	}
	if old.Status.sameReport(&c.Status) {
		return old, nil
	}
	ct := *old
	st := c.Status
	if len(st.Services) == 0 {
		st.Services = nil
	}
	ct.Status = &st
	if !old.Status.displayOnly(&st) {
		ct.ModifyIndex = index
	}
	if reapable(&ct) {
		delete(s.containers, c.ID)
	} else {
		s.containers[c.ID] = &ct
	}
	s.touch(TableContainers, index)
	return &ct, nil
}

func (s *Store) createToken(index uint64, c *CreateToken) (*Token, error) {
	if err := ValidateToken(c); err != nil {
		return nil, err
	}
	if c.AccessorID == "" || c.SecretHash == "" {
		return nil, invalid("accessor_id", "must not be empty")
	}
	if s.tokens[c.AccessorID] != nil || s.tokenHash[c.SecretHash] != nil {
		return nil, conflict("token %q exists", c.AccessorID)
	}
	t := &Token{AccessorID: c.AccessorID, SecretHash: c.SecretHash, Role: c.Role, Node: c.Node,
		Description: c.Description, CreateIndex: index, ModifyIndex: index}
	s.tokens[t.AccessorID] = t
	s.tokenHash[t.SecretHash] = t
	s.touch(TableTokens, index)
	return t, nil
}

func (s *Store) deleteToken(index uint64, c *DeleteToken) (*Token, error) {
	old := s.tokens[c.AccessorID]
	if old == nil {
		return nil, notFound("token %q", c.AccessorID)
	}
	delete(s.tokens, c.AccessorID)
	delete(s.tokenHash, old.SecretHash)
	s.touch(TableTokens, index)
	return old, nil
}

func (s *Store) setServer(index uint64, c *SetServer) (*Server, error) {
	if c.ID == "" {
		return nil, invalid("id", "must not be empty")
	}
	old := s.servers[c.ID]
	if old != nil && old.HTTPAddr == c.HTTPAddr {
		return old, nil
	}
	sv := &Server{ID: c.ID, HTTPAddr: c.HTTPAddr, CreateIndex: index, ModifyIndex: index}
	if old != nil {
		sv.CreateIndex = old.CreateIndex
	}
	s.servers[c.ID] = sv
	s.touch(TableServers, index)
	return sv, nil
}

func (s *Store) removeServer(index uint64, c *RemoveServer) (*Server, error) {
	old := s.servers[c.ID]
	if old == nil {
		return nil, nil
	}
	delete(s.servers, c.ID)
	s.touch(TableServers, index)
	return old, nil
}

// Reads. Each returns the index of the tables it read, sorted records and a
// watch set for blocking queries.

// Nodes returns every node, sorted by id.
func (s *Store) Nodes() (uint64, []*Node, WatchSet) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := sortedValues(s.nodes, func(a, b *Node) int { return cmp.Compare(a.ID, b.ID) })
	return s.index([]Table{TableNodes}), out, WatchSet{s.watches[TableNodes]}
}

// Node returns one node, or nil.
func (s *Store) Node(id string) (uint64, *Node, WatchSet) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.index([]Table{TableNodes}), s.nodes[id], WatchSet{s.watches[TableNodes]}
}

// Versions returns the versions of one service, or of every service when
// service is empty, sorted by service then semantic version.
func (s *Store) Versions(service string) (uint64, []*ServiceVersion, WatchSet) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*ServiceVersion
	if service != "" {
		for _, v := range s.versions[service] {
			out = append(out, v)
		}
	} else {
		out = s.allVersions()
	}
	slices.SortFunc(out, compareVersions)
	return s.index([]Table{TableServices}), out, WatchSet{s.watches[TableServices]}
}

// Version returns one service version, or nil.
func (s *Store) Version(k VersionKey) *ServiceVersion {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.version(k)
}

func (s *Store) version(k VersionKey) *ServiceVersion {
	return s.versions[k.Service][k.Version]
}

// putVersion stores a version record and keeps the draining set in step.
// Callers hold s.mu for writing.
func (s *Store) putVersion(v *ServiceVersion) {
	m := s.versions[v.Service]
	if m == nil {
		m = map[string]*ServiceVersion{}
		s.versions[v.Service] = m
	}
	if _, ok := m[v.Version]; !ok {
		s.nversions++
	}
	m[v.Version] = v
	if v.State == VersionDraining {
		s.draining[v.Key()] = struct{}{}
	} else {
		delete(s.draining, v.Key())
	}
}

func (s *Store) allVersions() []*ServiceVersion {
	out := make([]*ServiceVersion, 0, s.nversions)
	for _, m := range s.versions {
		for _, v := range m {
			out = append(out, v)
		}
	}
	return out
}

// parsedVersions caches parsed version strings: sorting a service's
// versions for every read must not run go-version's parser per comparison.
var parsedVersions sync.Map // string -> *version.Version, or error

func parseVersion(s string) (*version.Version, error) {
	if v, ok := parsedVersions.Load(s); ok {
		if err, isErr := v.(error); isErr {
			return nil, err
		}
		return v.(*version.Version), nil
	}
	v, err := version.NewVersion(s)
	if err != nil {
		parsedVersions.Store(s, err)
		return nil, err
	}
	parsedVersions.Store(s, v)
	return v, nil
}

func compareVersions(a, b *ServiceVersion) int {
	if c := cmp.Compare(a.Service, b.Service); c != 0 {
		return c
	}
	va, ea := parseVersion(a.Version)
	vb, eb := parseVersion(b.Version)
	if ea == nil && eb == nil {
		if c := va.Compare(vb); c != 0 {
			return c
		}
	}
	return cmp.Compare(a.Version, b.Version)
}

// Containers returns the containers on one node, or every container when
// node is empty, sorted by id.
func (s *Store) Containers(node string) (uint64, []*Container, WatchSet) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*Container
	for _, c := range s.containers {
		if node == "" || c.Spec.Node == node {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b *Container) int { return cmp.Compare(a.ID, b.ID) })
	return s.index([]Table{TableContainers}), out, WatchSet{s.watches[TableContainers]}
}

// Container returns one container, or nil.
func (s *Store) Container(id string) (uint64, *Container, WatchSet) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.index([]Table{TableContainers}), s.containers[id], WatchSet{s.watches[TableContainers]}
}

// Tokens returns every ACL token, sorted by accessor id.
func (s *Store) Tokens() (uint64, []*Token) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := sortedValues(s.tokens, func(a, b *Token) int { return cmp.Compare(a.AccessorID, b.AccessorID) })
	return s.index([]Table{TableTokens}), out
}

// TokenBySecretHash finds the token whose secret hashes to h, or nil.
func (s *Store) TokenBySecretHash(h string) *Token {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.tokenHash[h]
}

// Servers returns the known registry servers' HTTP addresses by server id.
func (s *Store) Servers() map[string]string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string]string, len(s.servers))
	for id, sv := range s.servers {
		out[id] = sv.HTTPAddr
	}
	return out
}

// Counts returns how many records each table holds.
func (s *Store) Counts() map[string]int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return map[string]int{
		"nodes": len(s.nodes), "services": len(s.versions), "versions": s.nversions, "containers": len(s.containers),
		"tokens": len(s.tokens), "servers": len(s.servers),
	}
}

func sortedValues[K comparable, V any](m map[K]V, cmpf func(a, b V) int) []V {
	out := make([]V, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	slices.SortFunc(out, cmpf)
	return out
}
