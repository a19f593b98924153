// Package census is the pure core of the census of watchers and of changes
// in force (docs/design.md §5): who watches which table, up to which index
// each has acknowledged, who is live, whether a change is in force, and
// whether a change would strand a live client.
//
// It reads no clock and starts no goroutine: every time is passed in. The
// registry's servers wrap it in locks and timers; the simulator calls the
// same functions.
package census

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/coexist-dev/coexist/api"
)

// The tables a watcher acknowledges.
const (
	TableServices   = "services"
	TableContainers = "containers"
	TableNodes      = "nodes"
)

// Tables are the tables that routing reads, in a fixed order.
var Tables = []string{TableServices, TableContainers, TableNodes}

// Kinds of watcher.
const (
	KindAgent  = "agent"
	KindClient = "client"
)

// AgentName is the Coexist-Client an agent sends; its Coexist-Client-Version
// is its node id.
const AgentName = api.AgentClientName

// Identity is who a watch request says it comes from.
type Identity struct {
	Instance string `json:"instance"`
	Kind     string `json:"kind"`
	Name     string `json:"name"`
	Version  string `json:"version"`
	// Calls are the services an SDK client has routed to.
	Calls []string `json:"calls,omitempty"`
	// Requires are an SDK client's own requirements per service.
	Requires map[string]string `json:"requires,omitempty"`
}

func (id *Identity) equal(o *Identity) bool {
	return id.Instance == o.Instance && id.Kind == o.Kind && id.Name == o.Name && id.Version == o.Version &&
		slices.Equal(id.Calls, o.Calls) && maps.Equal(id.Requires, o.Requires)
}

// Entry is one watcher of one table as one server sees it.
type Entry struct {
	Identity
	Table string `json:"table"`
	// Ack is the highest ?index the watcher asked with: it has applied the
	// table up to Ack.
	Ack uint64 `json:"ack"`
	// Open is how many of its requests are open on the server.
	Open int `json:"open"`
	// Idle is how long ago, at the time of the report, a request of the
	// watcher last began or ended: a duration, so that the clocks of the
	// servers need not agree.
	Idle time.Duration `json:"idle"`
}

type key struct{ instance, table string }

type local struct {
	id   Identity
	ack  uint64
	open int
	last time.Time
	// leaving: the watcher said it is going away while a request of it
	// was still open; the entry goes when the last one ends.
	leaving bool
}

// Local is the census of the watchers one server serves. It is not safe for
// concurrent use.
type Local struct {
	ttl     time.Duration
	m       map[key]*local
	changed bool
}

// NewLocal returns an empty census whose watchers stay live for ttl after
// their last request.
func NewLocal(ttl time.Duration) *Local {
	return &Local{ttl: ttl, m: map[key]*local{}}
}

// Begin records that a watch request of id on table, asking with index,
// began at now. An index of 0 acknowledges nothing; an acknowledgement never
// goes backwards.
func (l *Local) Begin(id Identity, table string, index uint64, now time.Time) {
	k := key{id.Instance, table}
	e := l.m[k]
	if e == nil {
		e = &local{}
		l.m[k] = e
		l.changed = true
	} else {
		// The services a process calls only grow, and its requests may be
		// handled out of order (one it gave up on begins here after the
		// one that replaced it): keep every call any of them named.
		id.Calls = unionCalls(e.id.Calls, id.Calls)
	}
	if !e.id.equal(&id) {
		e.id = id
		l.changed = true
	}
	if index > e.ack {
		e.ack = index
		l.changed = true
	}
	e.open++
	e.leaving = false
	e.last = now
}

// unionCalls is a and b together, sorted, without repeats; a itself when b
// adds nothing.
func unionCalls(a, b []string) []string {
	out := a
	for _, c := range b {
		if !slices.Contains(out, c) {
			out = append(slices.Clip(out), c)
		}
	}
	if len(out) != len(a) {
		slices.Sort(out)
	}
	return out
}

// End records that a request of instance on table ended at now.
func (l *Local) End(instance, table string, now time.Time) {
	e := l.m[key{instance, table}]
	if e == nil {
		return
	}
	if e.open > 0 {
		e.open--
	}
	e.last = now
	if e.leaving && e.open == 0 {
		delete(l.m, key{instance, table})
		l.changed = true
	}
}

// Leave forgets every entry of instance: a watcher that closes cleanly
// says so, rather than staying live for ttl after its last request. An
// entry with a request still open goes when that request ends, so that a
// Leave sent by anyone else than the watcher itself cannot hide a live
// watcher that is waiting on a blocking query.
func (l *Local) Leave(instance string) {
	for k, e := range l.m {
		if k.instance != instance {
			continue
		}
		if e.open > 0 {
			e.leaving = true
			continue
		}
		delete(l.m, k)
		l.changed = true
	}
}

// Changed reports whether an entry appeared or an acknowledgement moved since
// the last Report.
func (l *Local) Changed() bool { return l.changed }

// Report returns the live entries at now, in no particular order, and
// forgets the dead ones. The leader merges a report per instance and table
// (Fleet), so nothing reads its order; sorting it would cost the most of a
// report of a large fleet.
func (l *Local) Report(now time.Time) []Entry {
	l.changed = false
	out := make([]Entry, 0, len(l.m))
	for k, e := range l.m {
		idle := now.Sub(e.last)
		if e.open == 0 && idle >= l.ttl {
			delete(l.m, k)
			continue
		}
		out = append(out, Entry{Identity: e.id, Table: k.table, Ack: e.ack, Open: e.open, Idle: max(idle, 0)})
	}
	return out
}

// mark is when a table reached an index, as the leader saw it.
type mark struct {
	index uint64
	at    time.Time
}

// maxMarks bounds the history of a table kept for lag times.
const maxMarks = 512

type report struct {
	at      time.Time
	entries []Entry
}

// Fleet is the leader's census: the last report of every server. It is not
// safe for concurrent use.
type Fleet struct {
	ttl      time.Duration
	since    time.Time
	expected map[string]bool
	reports  map[string]report
	marks    map[string][]mark
}

// NewFleet returns the census of a leader that took office at since, with
// servers the members it expects a report from, and ttl the time a watcher
// stays live after its last request (and a server's report stays valid).
func NewFleet(since time.Time, servers []string, ttl time.Duration) *Fleet {
	f := &Fleet{ttl: ttl, since: since, expected: map[string]bool{}, reports: map[string]report{}, marks: map[string][]mark{}}
	for _, s := range servers {
		f.expected[s] = true
	}
	return f
}

// TTL is the time a watcher stays live after its last request.
func (f *Fleet) TTL() time.Duration { return f.ttl }

// SetServers changes the members a report is expected from.
func (f *Fleet) SetServers(servers []string) {
	f.expected = map[string]bool{}
	for _, s := range servers {
		f.expected[s] = true
	}
}

// Report takes server's census, received at now; it replaces the server's
// previous one.
func (f *Fleet) Report(server string, entries []Entry, now time.Time) {
	f.reports[server] = report{at: now, entries: entries}
}

// Complete reports whether the census can be trusted at now: every expected
// server has reported since the leader took office, or the ttl has passed
// since then (a server that has not reported by then serves no watcher that
// is still live elsewhere unseen).
func (f *Fleet) Complete(now time.Time) bool {
	if now.Sub(f.since) >= f.ttl {
		return true
	}
	for s := range f.expected {
		if _, ok := f.reports[s]; !ok {
			return false
		}
	}
	return true
}

// Missing are the expected servers that have not reported, sorted.
func (f *Fleet) Missing() []string {
	var out []string
	for s := range f.expected {
		if _, ok := f.reports[s]; !ok {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// Observe records that table reached index at now, for lag times.
func (f *Fleet) Observe(table string, index uint64, now time.Time) {
	ms := f.marks[table]
	if n := len(ms); n > 0 && ms[n-1].index >= index {
		return
	}
	ms = append(ms, mark{index, now})
	if len(ms) > maxMarks {
		ms = slices.Delete(ms, 0, len(ms)-maxMarks)
	}
	f.marks[table] = ms
}

// behindSince is when table first passed ack, as far as the leader knows.
func (f *Fleet) behindSince(table string, ack uint64) (time.Time, bool) {
	ms := f.marks[table]
	i, _ := slices.BinarySearchFunc(ms, ack+1, func(m mark, idx uint64) int { return cmp.Compare(m.index, idx) })
	if i == len(ms) {
		return time.Time{}, false
	}
	return ms[i].at, true
}

// Watcher is one live watcher of the fleet, its tables merged.
type Watcher struct {
	Identity
	// Server is the server that last served it.
	Server string     `json:"server"`
	Tables []TableAck `json:"tables"`
}

// TableAck is a watcher's acknowledgement of one table.
type TableAck struct {
	Table string `json:"table"`
	Ack   uint64 `json:"ack"`
	// Lag is how many indexes the table is ahead of Ack; LagTime is how
	// long since it first passed Ack.
	Lag     uint64        `json:"lag"`
	LagTime time.Duration `json:"lag_time"`
}

type merged struct {
	Entry
	server string
	last   time.Time
}

// live merges the live entries of the given instances and tables at now:
// the highest acknowledgement, the server seen last.
func (f *Fleet) live(now time.Time, only map[key]bool) map[key]*merged {
	out := make(map[key]*merged, len(only))
	block := make([]merged, 0, len(only))
	f.each(now, func(srv string, e *Entry, last time.Time) {
		k := key{e.Instance, e.Table}
		if !only[k] {
			return
		}
		if m := out[k]; m != nil {
			m.add(srv, e, last)
			return
		}
		block = append(block, merged{Entry: *e, server: srv, last: last})
		out[k] = &block[len(block)-1]
	})
	return out
}

// add merges another live entry of the same instance and table, seen last
// at last on srv.
func (m *merged) add(srv string, e *Entry, last time.Time) {
	m.Ack = max(m.Ack, e.Ack)
	m.Open += e.Open
	if last.After(m.last) {
		m.last, m.server, m.Identity = last, srv, e.Identity
	}
}

// each calls fn with every live entry at now, server by server in order,
// and the time it was last seen.
func (f *Fleet) each(now time.Time, fn func(srv string, e *Entry, last time.Time)) {
	for _, srv := range slices.Sorted(maps.Keys(f.reports)) {
		rep := f.reports[srv]
		reportLive := now.Sub(rep.at) < f.ttl
		for i := range rep.entries {
			e := &rep.entries[i]
			last := rep.at.Add(-e.Idle)
			if !(now.Sub(last) < f.ttl || (e.Open > 0 && reportLive)) {
				continue
			}
			if e.Open > 0 {
				last = rep.at
			}
			fn(srv, e, last)
		}
	}
}

// Watchers are the live watchers at now, sorted by kind, name, version and
// instance; tables gives each table's current index, for the lags.
func (f *Fleet) Watchers(now time.Time, tables map[string]uint64) []Watcher {
	// Merge per instance, then per table within it (a watcher has a few
	// tables): one pass, one map entry per instance.
	total := 0
	for _, rep := range f.reports {
		total += len(rep.entries)
	}
	nt := len(Tables)
	idx := make(map[string]int, total/nt+1)
	var insts [][]merged
	var block []merged
	f.each(now, func(srv string, e *Entry, last time.Time) {
		i, ok := idx[e.Instance]
		if !ok {
			if len(block)+nt > cap(block) {
				block = make([]merged, 0, max(total, nt))
			}
			i = len(insts)
			idx[e.Instance] = i
			insts = append(insts, block[len(block):len(block):len(block)+nt])
			block = block[:len(block)+nt]
		}
		ms := insts[i]
		for j := range ms {
			if ms[j].Table == e.Table {
				ms[j].add(srv, e, last)
				return
			}
		}
		insts[i] = append(ms, merged{Entry: *e, server: srv, last: last})
	})
	out := make([]Watcher, 0, len(insts))
	acks := make([]TableAck, 0, total)
	for _, ms := range insts {
		w := Watcher{Identity: ms[0].Identity, Server: ms[0].server}
		last := ms[0].last
		n := len(acks)
		for j := range ms {
			m := &ms[j]
			if m.last.After(last) {
				last, w.Server = m.last, m.server
			}
			// The services a client calls only grow; a table's request
			// may carry an older list than another's.
			for _, c := range m.Calls {
				if !slices.Contains(w.Calls, c) {
					w.Calls = append(slices.Clip(w.Calls), c)
				}
			}
			ta := TableAck{Table: m.Table, Ack: m.Ack}
			if cur := tables[m.Table]; cur > m.Ack {
				ta.Lag = cur - m.Ack
				if at, ok := f.behindSince(m.Table, m.Ack); ok {
					ta.LagTime = max(now.Sub(at), 0)
				}
			}
			acks = append(acks, ta)
		}
		w.Tables = acks[n:len(acks):len(acks)]
		if !slices.IsSorted(w.Calls) {
			slices.Sort(w.Calls)
		}
		slices.SortFunc(w.Tables, func(a, b TableAck) int { return cmp.Compare(a.Table, b.Table) })
		out = append(out, w)
	}
	slices.SortFunc(out, func(a, b Watcher) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Version, b.Version), cmp.Compare(a.Instance, b.Instance))
	})
	return out
}

// Lagging is a live watcher that has not acknowledged what a change needs.
type Lagging struct {
	Instance string `json:"instance"`
	Kind     string `json:"kind"`
	Name     string `json:"name"`
	Version  string `json:"version"`
	Server   string `json:"server"`
	Table    string `json:"table"`
	Ack      uint64 `json:"ack"`
	Need     uint64 `json:"need"`
}

func (l Lagging) String() string {
	return fmt.Sprintf("%s %s@%s (instance %s on %s) at %s index %d, needs %d", l.Kind, l.Name, l.Version, l.Instance, l.Server, l.Table, l.Ack, l.Need)
}

// Need is the index a watcher of a table whose current index is current must
// have acknowledged for a change at index to be in force: every change to
// the table up to index is at or below min(index, current).
func Need(index, current uint64) uint64 { return min(index, current) }

// InForce reports whether the change at index is in force at now: the census
// is complete and every live watcher of every table has acknowledged
// Need(index, tables[table]). tables gives the current index of the tables
// the change may have touched. Lagging lists who holds it back; when the
// census is incomplete it is false with no one lagging.
func (f *Fleet) InForce(index uint64, tables map[string]uint64, now time.Time) (bool, []Lagging) {
	if !f.Complete(now) {
		return false, nil
	}
	// A watcher lags when its highest acknowledgement on any server is
	// short: only the instances and tables some server has short are
	// merged, which in the common case, all in force, is none.
	need := make(map[string]uint64, len(tables))
	for t, cur := range tables {
		need[t] = Need(index, cur)
	}
	var short map[key]bool
	f.each(now, func(_ string, e *Entry, _ time.Time) {
		if n, ok := need[e.Table]; ok && e.Ack < n {
			if short == nil {
				short = map[key]bool{}
			}
			short[key{e.Instance, e.Table}] = true
		}
	})
	if len(short) == 0 {
		return true, nil
	}
	var lag []Lagging
	for k, m := range f.live(now, short) {
		if need := need[k.table]; m.Ack < need {
			lag = append(lag, Lagging{Instance: k.instance, Kind: m.Kind, Name: m.Name, Version: m.Version,
				Server: m.server, Table: k.table, Ack: m.Ack, Need: need})
		}
	}
	slices.SortFunc(lag, func(a, b Lagging) int {
		return cmp.Or(cmp.Compare(a.Instance, b.Instance), cmp.Compare(a.Table, b.Table))
	})
	return len(lag) == 0, lag
}

// Only is tables restricted to the names in only; all of tables when only is
// empty.
func Only(tables map[string]uint64, only ...string) map[string]uint64 {
	if len(only) == 0 {
		return tables
	}
	out := make(map[string]uint64, len(only))
	for _, t := range only {
		out[t] = tables[t]
	}
	return out
}
