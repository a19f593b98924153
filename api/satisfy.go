package api

import (
	"cmp"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	version "github.com/hashicorp/go-version"
)

// witness finds a canonical version (see CheckVersion) that satisfies every
// constraint of cs, as go-version's Constraints.Check decides. It reports
// false when there is none. A witness it returns has been checked with
// go-version itself; a "none" rests on the argument below. In the one case
// that argument does not cover (a pre-release in cs holding a character
// semantic versioning does not allow, such as "~") it reports true with an
// empty witness rather than refuse a range it could not decide.
//
// Releases (no pre-release). Against a fixed constraint, the releases that
// satisfy it form an interval of the order of (MAJOR, MINOR, PATCH): go-version
// compares a release with the constraint's version number by number, reading
// missing numbers as zeros ("~> 1.2" is [1.2.0, 2.0.0), "~> 1" is >= 1.0.0).
// The releases that satisfy every constraint but the "!=" ones are then an
// interval too, whose least element is the least release of one of the
// constraints: the triple of its version, or the triple after it. And each
// "!=" removes at most one release, so with k of them the interval holds a
// witness among its first k+1 releases, or none at all.
//
// Pre-releases. A constraint >, >=, <, <= or ~> on a release admits no
// pre-release, and one on a pre-release admits only pre-releases of the same
// MAJOR.MINOR.PATCH; "=" pins it too. So the triple is pinned, and only the
// pre-release is free. go-version compares two pre-releases identifier by
// identifier and decides at the first that differs, by its class (a number,
// a word, or missing) and its order within the class. So a pre-release w
// that shares a longest prefix P with the constraints' pre-releases and then
// differs from all of them at the next identifier d behaves, against every
// constraint, as P.d' does for any d' of the same class that sits between the
// same neighbours among the identifiers the constraints have after P. The
// candidates are every such prefix P followed by one representative of every
// class and gap, and by each identifier the constraints have there (which
// covers a w that is itself a prefix of one of them): 0, n-1, n, n+1 for a
// number n; "-" (the least word), s and s+"-" (the least word after s) for a
// word s. go-version's order of
// pre-releases is not even transitive ("a" < "a.1" < "a.b" < "a"), which is
// why the check goes through candidates and not through intervals.
func witness(cs version.Constraints) (string, bool) {
	bs := make([]bound, 0, len(cs))
	for _, c := range cs {
		b, ok := parseBound(c.String())
		if !ok {
			return "", true
		}
		bs = append(bs, b)
	}
	if w, ok := releaseWitness(cs, bs); ok {
		return w, true
	}
	return prereleaseWitness(cs, bs)
}

// bound is one constraint: its operator and version.
type bound struct {
	op string
	v  *version.Version
	t  triple
}

// parseBound reads back a go-version constraint from its text, which
// go-version has already matched against `^\s*(<=|>=|!=|~>|<|>|=|)\s*(version)\s*$`.
func parseBound(text string) (bound, bool) {
	s := strings.TrimSpace(text)
	op := "="
	for _, o := range []string{"<=", ">=", "!=", "~>", "<", ">", "="} {
		if strings.HasPrefix(s, o) {
			op, s = o, s[len(o):]
			break
		}
	}
	v, err := version.NewVersion(strings.TrimSpace(s))
	if err != nil {
		return bound{}, false
	}
	segs := v.Segments64()
	return bound{op: op, v: v, t: triple{segs[0], segs[1], segs[2]}}, true
}

// triple is a release's MAJOR, MINOR and PATCH.
type triple [3]int64

func (t triple) String() string {
	return strconv.FormatInt(t[0], 10) + "." + strconv.FormatInt(t[1], 10) + "." + strconv.FormatInt(t[2], 10)
}

// next is the least triple after t.
func (t triple) next() (triple, bool) {
	for i := 2; i >= 0; i-- {
		if t[i] < math.MaxInt64 {
			t[i]++
			for j := i + 1; j < 3; j++ {
				t[j] = 0
			}
			return t, true
		}
	}
	return t, false
}

func compareTriples(a, b triple) int {
	for i := range a {
		if c := cmp.Compare(a[i], b[i]); c != 0 {
			return c
		}
	}
	return 0
}

// check reports whether the version written s satisfies cs.
func check(cs version.Constraints, s string) bool {
	v, err := version.NewVersion(s)
	return err == nil && cs.Check(v)
}

func releaseWitness(cs version.Constraints, bs []bound) (string, bool) {
	lows := []triple{{}}
	var rest version.Constraints
	excluded := 0
	for i, b := range bs {
		if b.op == "!=" {
			excluded++
			continue
		}
		rest = append(rest, cs[i])
		lows = append(lows, b.t)
		if n, ok := b.t.next(); ok {
			lows = append(lows, n)
		}
	}
	slices.SortFunc(lows, compareTriples)
	lows = slices.Compact(lows)
	for _, t := range lows {
		if !check(rest, t.String()) {
			continue
		}
		// t is the least release in the interval; walk it past the "!=".
		for range excluded + 1 {
			if !check(rest, t.String()) {
				return "", false
			}
			if check(cs, t.String()) {
				return t.String(), true
			}
			var ok bool
			if t, ok = t.next(); !ok {
				return "", false
			}
		}
		return "", false
	}
	return "", false
}

func prereleaseWitness(cs version.Constraints, bs []bound) (string, bool) {
	var pin *triple
	for _, b := range bs {
		switch b.op {
		case "=", "!=":
			continue
		}
		if b.v.Prerelease() == "" || len(b.v.Segments64()) > 3 {
			return "", false
		}
		if pin != nil && *pin != b.t {
			return "", false
		}
		t := b.t
		pin = &t
	}
	for _, b := range bs {
		if pin == nil && b.op == "=" {
			t := b.t
			pin = &t
		}
	}
	if pin == nil {
		// Only "!=": a release satisfied them already.
		return "", false
	}
	// next[P] holds the identifiers the constraints' pre-releases have after
	// the prefix P ("" when one ends at P).
	next := map[string]map[string]bool{"": {}}
	undecidable := false
	for _, b := range bs {
		pre := b.v.Prerelease()
		if pre == "" {
			continue
		}
		ids := strings.Split(pre, ".")
		for j := 0; j <= len(ids); j++ {
			p := strings.Join(ids[:j], ".")
			after := ""
			if j < len(ids) {
				after = ids[j]
				if !identChars(after) {
					undecidable = true
				}
			}
			if next[p] == nil {
				next[p] = map[string]bool{}
			}
			next[p][after] = true
		}
	}
	var cands []string
	for _, p := range slices.Sorted(maps.Keys(next)) {
		for _, d := range representatives(next[p]) {
			if p == "" {
				cands = append(cands, d)
			} else {
				cands = append(cands, p+"."+d)
			}
		}
	}
	for _, pre := range cands {
		w := pin.String() + "-" + pre
		if CheckVersion(w) == nil && check(cs, w) {
			return w, true
		}
	}
	return "", undecidable
}

// representatives returns an identifier of every class and gap that ids
// leave: see witness. Some may not be canonical; the caller skips those.
func representatives(ids map[string]bool) []string {
	out := []string{"0", "-"}
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		if id == "" {
			continue
		}
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil {
			out = append(out, id, id+"-")
			continue
		}
		if n > 0 {
			out = append(out, strconv.FormatInt(n-1, 10))
		}
		if n >= 0 {
			out = append(out, strconv.FormatInt(n, 10))
		}
		if n >= -1 && n < math.MaxInt64 {
			out = append(out, strconv.FormatInt(n+1, 10))
		}
	}
	return out
}
