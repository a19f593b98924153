package routing

import (
	"fmt"
	"testing"

	version "github.com/hashicorp/go-version"
)

// versionCorpus covers what go-version distinguishes: one to four segments,
// zeros, pre-releases numeric and not, of several parts, with leading zeros,
// and build metadata, which it ignores.
func versionCorpus() []string {
	var out []string
	cores := []string{
		"0", "1", "2", "0.9", "1.0", "1.4", "2.0", "1.10",
		"0.0.0", "1.0.0", "1.2.0", "1.2.3", "1.4.0", "1.4.2", "1.5.0", "1.10.0", "2.0.0", "2.0.1", "3.0.0",
		"1.0.0.0", "1.2.3.4", "1.2.0.0", "v1.2.3",
	}
	pres := []string{"", "-alpha", "-alpha.1", "-alpha.beta", "-beta", "-beta.2", "-beta.11", "-rc.1", "-1", "-01", "-0.3.7", "-x.7.z.92", "beta"}
	metas := []string{"", "+build", "+exp.sha.5114f85"}
	for _, c := range cores {
		for _, p := range pres {
			for _, m := range metas {
				out = append(out, c+p+m)
			}
		}
	}
	return out
}

func rangeCorpus() []string {
	checks := []string{"1", "1.0", "1.4", "1.2.3", "1.4.0", "2.0", "2.0.0", "1.2.3-beta", "1.0.0-alpha.1", "1.2.3.4", "0.9", "1.2.0+build"}
	ops := []string{"", "=", "!=", ">", "<", ">=", "<=", "~>"}
	var out []string
	for _, o := range ops {
		for _, c := range checks {
			out = append(out, o+c, o+" "+c)
		}
	}
	out = append(out,
		">= 1.0, < 2.0", ">= 2.0, < 3.0", " >= 1.0 ,< 2.0 ", "~> 1.4, != 1.4.1", "> 1.0.0-alpha, < 1.2",
		"~> 1.2.3-beta", "~> 1", "~> 1.0.0.0", ">= 0",
	)
	return out
}

// TestCompiledMatchesGoVersion holds the allocation-free mirror to
// go-version's own answers, for comparisons and for constraint checks.
func TestCompiledMatchesGoVersion(t *testing.T) {
	vs := versionCorpus()
	parsed := make([]*version.Version, 0, len(vs))
	keys := make([]vkey, 0, len(vs))
	for _, s := range vs {
		v, err := version.NewVersion(s)
		if err != nil {
			t.Fatalf("corpus version %q: %v", s, err)
		}
		parsed = append(parsed, v)
		keys = append(keys, keyOf(v))
	}

	t.Run("compare", func(t *testing.T) {
		for i, a := range parsed {
			for j, b := range parsed {
				if got, want := compareKeys(&keys[i], &keys[j]), a.Compare(b); got != want {
					t.Errorf("compare(%q, %q) = %d, go-version says %d", vs[i], vs[j], got, want)
				}
			}
		}
	})

	t.Run("check", func(t *testing.T) {
		for _, r := range rangeCorpus() {
			m := newMatcher(r)
			if m.err != nil {
				t.Fatalf("corpus range %q: %v", r, m.err)
			}
			if !m.fast {
				t.Fatalf("range %q did not compile", r)
			}
			for i, v := range parsed {
				if got, want := m.check(v, &keys[i]), m.cs.Check(v); got != want {
					t.Errorf("%q admits %q: compiled %v, go-version %v", r, vs[i], got, want)
				}
			}
		}
	})
}

func FuzzCompiledMatchesGoVersion(f *testing.F) {
	for _, v := range []string{"1.2.3", "1.2.3-beta.1", "2", "1.0.0.1+x"} {
		for _, r := range []string{">= 1.0, < 2.0", "~> 1.2", "!= 1.2.3-beta.1", "~> 1.2.3-beta"} {
			f.Add(v, r)
		}
	}
	f.Fuzz(func(t *testing.T, vs, rs string) {
		v, err := version.NewVersion(vs)
		if err != nil {
			return
		}
		m := newMatcher(rs)
		if m.err != nil {
			return
		}
		if !m.fast {
			t.Fatalf("range %q parsed but did not compile", rs)
		}
		k := keyOf(v)
		if got, want := m.check(v, &k), m.cs.Check(v); got != want {
			t.Fatalf("%q admits %q: compiled %v, go-version %v", rs, vs, got, want)
		}
	})
}

func TestSegmentsWritten(t *testing.T) {
	for s, want := range map[string]int{
		"1": 1, "1.2": 2, "v1.2.3": 3, "1.2.3.4": 4, "1.2-beta.1": 2, "1.2beta": 2, "1.2.3+4.5": 3, "1.2.3-4.5": 3,
	} {
		if got := segmentsWritten(s); got != want {
			t.Errorf("segmentsWritten(%q) = %d, want %d", s, got, want)
		}
	}
}

func TestNodeKeyEqualNames(t *testing.T) {
	for _, n := range []string{"", "a", "node-1", "ip-10-0-1-23.ec2.internal", "ip-10-0-1-24.ec2.internal"} {
		if nodeKey(n) != nodeKey(string([]byte(n))) {
			t.Errorf("nodeKey(%q) differs between copies", n)
		}
	}
	if nodeKey("ip-10-0-1-23.ec2.internal") == nodeKey("ip-10-0-1-24.ec2.internal") {
		t.Log("long names collide; local() falls back to comparing names")
	}
	_ = fmt.Sprint()
}
