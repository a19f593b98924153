package routing

import (
	"strconv"
	"strings"

	version "github.com/hashicorp/go-version"
)

// This file mirrors the comparison and constraint semantics of
// hashicorp/go-version v1.9.0 on pre-computed data. go-version's
// Version.Compare copies segments and renders strings on every call (nine
// allocations for four checks, measured), which the hot path cannot afford;
// the functions below take the same decisions, quirks included, without
// allocating. TestCompiledMatchesGoVersion and FuzzCompiledMatchesGoVersion
// hold them to go-version's answers. Only go-version parses: everything here
// is derived from an already parsed *version.Version or version.Constraints.

// vkey is the allocation-free form of a parsed *version.Version.
type vkey struct {
	ver   *version.Version // what the key was made from
	segs  []int64          // as Segments64: padded to at least three
	si    int              // number of segments actually written
	pre   string
	parts []prePart // pre split on "."

	// simple is set for a plain MAJOR.MINOR.PATCH: exactly three segments
	// and no pre-release. Two simple versions compare as the triples in abc,
	// which is most comparisons, so they skip the general path.
	simple bool
	abc    [3]int64
}

// prePart is one dot-separated part of a pre-release, with the result of
// strconv.ParseInt kept exactly as go-version sees it.
type prePart struct {
	s       string
	n       int64
	numeric bool
}

func keyOf(v *version.Version) vkey {
	k := vkey{
		ver:  v,
		segs: v.Segments64(),
		si:   segmentsWritten(strings.TrimPrefix(v.Original(), v.Prefix())),
		pre:  v.Prerelease(),
	}
	if k.si < 1 || k.si > len(k.segs) {
		// Not reachable for a version go-version accepted; stay in bounds.
		k.si = len(k.segs)
	}
	if k.pre == "" && len(k.segs) == 3 {
		k.simple = true
		copy(k.abc[:], k.segs)
	}
	if k.pre != "" {
		for _, p := range strings.Split(k.pre, ".") {
			n, err := strconv.ParseInt(p, 10, 64)
			k.parts = append(k.parts, prePart{s: p, n: n, numeric: err == nil})
		}
	}
	return k
}

// segmentsWritten counts the numeric segments at the start of a version
// string ("v1.2-beta" has two), which is what go-version records as si. Its
// regular expression always takes the longest run of dotted numbers, since
// nothing after that run may start with a dot.
func segmentsWritten(s string) int {
	s = strings.TrimPrefix(s, "v")
	n := 0
	i := 0
	for {
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == i {
			return n
		}
		n++
		if j+1 < len(s) && s[j] == '.' && s[j+1] >= '0' && s[j+1] <= '9' {
			i = j + 1
			continue
		}
		return n
	}
}

func equalSegments(a, b *vkey) bool {
	if len(a.segs) != len(b.segs) {
		return false
	}
	for i, s := range a.segs {
		if s != b.segs[i] {
			return false
		}
	}
	return true
}

func cmp3(a, b *[3]int64) int {
	for i := range a {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

func allZero(segs []int64) bool {
	for _, s := range segs {
		if s != 0 {
			return false
		}
	}
	return true
}

// compareKeys is go-version's (*Version).Compare.
func compareKeys(a, b *vkey) int {
	if equalSegments(a, b) {
		switch {
		case a.pre == "" && b.pre == "":
			return 0
		case a.pre == "":
			return 1
		case b.pre == "":
			return -1
		}
		return comparePrereleases(a, b)
	}
	la, lb := len(a.segs), len(b.segs)
	hs := max(la, lb)
	for i := 0; i < hs; i++ {
		if i > la-1 {
			if !allZero(b.segs[i:]) {
				return -1
			}
			break
		} else if i > lb-1 {
			if !allZero(a.segs[i:]) {
				return 1
			}
			break
		}
		switch l, r := a.segs[i], b.segs[i]; {
		case l == r:
			continue
		case l < r:
			return -1
		default:
			return 1
		}
	}
	return 0
}

func comparePrereleases(a, b *vkey) int {
	if a.pre == b.pre {
		return 0
	}
	n := max(len(a.parts), len(b.parts))
	for i := 0; i < n; i++ {
		var pa, pb prePart
		if i < len(a.parts) {
			pa = a.parts[i]
		}
		if i < len(b.parts) {
			pb = b.parts[i]
		}
		if c := comparePart(pa, pb); c != 0 {
			return c
		}
	}
	return 0
}

// comparePart is go-version's comparePart, including its handling of parts
// that are equal as numbers but not as strings ("01" and "1": -1 both ways).
func comparePart(a, b prePart) int {
	if a.s == b.s {
		return 0
	}
	if a.s == "" {
		if b.numeric {
			return -1
		}
		return 1
	}
	if b.s == "" {
		if a.numeric {
			return 1
		}
		return -1
	}
	switch {
	case a.numeric && !b.numeric:
		return -1
	case !a.numeric && b.numeric:
		return 1
	case !a.numeric && !b.numeric && a.s > b.s:
		return 1
	case a.n > b.n:
		return 1
	}
	return -1
}

func prereleaseCheck(v, c *vkey) bool {
	vPre, cPre := v.pre != "", c.pre != ""
	switch {
	case cPre && vPre:
		return equalSegments(v, c)
	case !cPre && vPre:
		return false
	}
	return true
}

type op uint8

const (
	opEqual op = iota
	opNotEqual
	opGreater
	opLess
	opGreaterEqual
	opLessEqual
	opPessimistic
)

// single is one compiled constraint such as ">= 1.0".
type single struct {
	// op, simple, si and abc repeat what the hot path needs of check, so
	// that a range's singles lie side by side.
	op     op
	simple bool
	si     int32
	abc    [3]int64
	check  *vkey
}

func (s *single) satisfied(v *vkey) bool {
	if v.simple && s.simple {
		// Equal segment counts and no pre-releases: Compare is the order of
		// the triples and prereleaseCheck holds.
		r := cmp3(&v.abc, &s.abc)
		switch s.op {
		case opEqual:
			return r == 0
		case opNotEqual:
			return r != 0
		case opGreater:
			return r > 0
		case opLess:
			return r < 0
		case opGreaterEqual:
			return r >= 0
		case opLessEqual:
			return r <= 0
		case opPessimistic:
			if r < 0 {
				return false
			}
			for i := 0; i < int(s.si)-1; i++ {
				if v.abc[i] != s.abc[i] {
					return false
				}
			}
			return s.abc[2] <= v.abc[2]
		}
		return false
	}
	c := s.check
	switch s.op {
	case opEqual:
		return compareKeys(v, c) == 0
	case opNotEqual:
		return compareKeys(v, c) != 0
	case opGreater:
		return prereleaseCheck(v, c) && compareKeys(v, c) == 1
	case opLess:
		return prereleaseCheck(v, c) && compareKeys(v, c) == -1
	case opGreaterEqual:
		return prereleaseCheck(v, c) && compareKeys(v, c) >= 0
	case opLessEqual:
		return prereleaseCheck(v, c) && compareKeys(v, c) <= 0
	case opPessimistic:
		if !prereleaseCheck(v, c) || (c.pre != "" && v.pre == "") {
			return false
		}
		if compareKeys(v, c) < 0 {
			return false
		}
		cs := len(c.segs)
		if cs > len(v.segs) {
			return false
		}
		for i := 0; i < c.si-1; i++ {
			if v.segs[i] != c.segs[i] {
				return false
			}
		}
		return c.segs[cs-1] <= v.segs[cs-1]
	}
	return false
}

// compileSingle reads back the operator and version of one go-version
// constraint from its original text, which go-version has already validated
// against `^\s*(<=|>=|!=|~>|<|>|=|)\s*(version)\s*$`.
func compileSingle(text string) (single, bool) {
	s := strings.TrimSpace(text)
	ops := [...]struct {
		text string
		op   op
	}{
		// The order of go-version's alternation: "<=" before "<".
		{"<=", opLessEqual}, {">=", opGreaterEqual}, {"!=", opNotEqual},
		{"~>", opPessimistic}, {"<", opLess}, {">", opGreater}, {"=", opEqual},
	}
	o := opEqual
	for _, c := range ops {
		if strings.HasPrefix(s, c.text) {
			o, s = c.op, s[len(c.text):]
			break
		}
	}
	v, err := version.NewVersion(strings.TrimSpace(s))
	if err != nil {
		return single{}, false
	}
	k := keyOf(v)
	return single{op: o, simple: k.simple, si: int32(k.si), abc: k.abc, check: &k}, true
}

// matcher is a parsed version range with its compiled form. A matcher whose
// range did not parse admits nothing.
type matcher struct {
	text    string              // as declared
	cs      version.Constraints // nil when err != nil
	err     error
	singles []single
	fast    bool // singles decide exactly as cs does
}

func newMatcher(text string) *matcher {
	m := &matcher{text: text}
	if strings.TrimSpace(text) == "" {
		// go-version rejects it too; say so plainly.
		m.err = errEmptyRange
		return m
	}
	m.cs, m.err = version.NewConstraint(text)
	if m.err != nil {
		m.cs = nil
		return m
	}
	m.compile()
	return m
}

func matcherOf(text string, cs version.Constraints) *matcher {
	m := &matcher{text: text, cs: cs}
	m.compile()
	return m
}

func (m *matcher) compile() {
	m.singles = make([]single, 0, len(m.cs))
	for _, c := range m.cs {
		if c == nil {
			return
		}
		s, ok := compileSingle(c.String())
		if !ok {
			return
		}
		m.singles = append(m.singles, s)
	}
	m.fast = true
}

// check reports whether v satisfies the range. k is v's compiled form, or nil
// when the caller has none, in which case go-version decides (and allocates).
func (m *matcher) check(v *version.Version, k *vkey) bool {
	if !m.fast || k == nil {
		return m.err == nil && m.cs.Check(v)
	}
	for i := range m.singles {
		if !m.singles[i].satisfied(k) {
			return false
		}
	}
	return true
}
