package api

import (
	"math/rand/v2"
	"strings"
	"testing"

	version "github.com/hashicorp/go-version"
)

func TestCheckVersionCanonical(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"1.0.0", ""},
		{"0.0.0", ""},
		{"1.4.2", ""},
		{"2.0.0-rc.1", ""},
		{"1.0.0-alpha-2.x", ""},
		{"10.20.30", ""},
		{"1", `"1" is not canonical; write "1.0.0"`},
		{"1.0", `"1.0" is not canonical; write "1.0.0"`},
		{"v1.0.0", `"v1.0.0" is not canonical; write "1.0.0"`},
		{"v1.0", `"v1.0" is not canonical; write "1.0.0"`},
		{"1.0.0+b1", `"1.0.0+b1" is not canonical; write "1.0.0"`},
		{"1.0.0-rc.1+b1", `"1.0.0-rc.1+b1" is not canonical; write "1.0.0-rc.1"`},
		{"01.2.3", `"01.2.3" is not canonical; write "1.2.3"`},
		{"1.0.0.0", `"1.0.0.0" is not canonical; write "1.0.0"`},
		{"1.0.0beta", `"1.0.0beta" is not canonical; write "1.0.0-beta"`},
		{"1.0.0-01", `"1.0.0-01" is not canonical; write "1.0.0-1"`},
		{"1.2.3.4", `"1.2.3.4" is not canonical: write MAJOR.MINOR.PATCH`},
		{"1.0.0-a~b", `"1.0.0-a~b" is not canonical: write MAJOR.MINOR.PATCH`},
		{"1.0.0-rc.-1", `"1.0.0-rc.-1" is not canonical: write MAJOR.MINOR.PATCH`},
		{"", "must not be empty"},
		{"1.x", `"1.x" is not a valid version: write a semantic version such as 1.4.2`},
		{strings.Repeat("1", 129), "is longer than 128 characters"},
	} {
		err := CheckVersion(tc.in)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("CheckVersion(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// A suggested spelling is itself canonical, and the same version.
	for _, in := range []string{"1", "v2.3", "1.0.0+b1", "01.02.03-rc.1+x", "1.0.0.0-beta"} {
		v := version.Must(version.NewVersion(in))
		canon, ok := canonicalVersion(v)
		if !ok || CheckVersion(canon) != nil || !version.Must(version.NewVersion(canon)).Equal(v) {
			t.Errorf("canonical spelling of %q: %q (%v)", in, canon, ok)
		}
	}
}

func TestCheckRange(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{">= 1.0, < 2.0", ""},
		{"~> 1.4", ""},
		{"= 1.2.3", ""},
		{">= 2.0, < 1.0", `">= 2.0, < 1.0" admits no version`},
		{"> 1.0, < 1.0", `"> 1.0, < 1.0" admits no version`},
		{"= 1.0, = 2.0", `"= 1.0, = 2.0" admits no version`},
		{"", "must not be empty"},
		{" ", "must not be empty"},
		{">= one", "is not a valid version range"},
		{">= 1.0 < 2.0", "is not a valid version range"},
		{strings.Repeat(">= 1.0,", 80), "is longer than 512 characters"},
	} {
		err := CheckRange(tc.in)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("CheckRange(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestWitness pins the satisfiability decision for every operator, with and
// without pre-releases, including go-version's quirks.
func TestWitness(t *testing.T) {
	for _, tc := range []struct {
		rng  string
		want bool
	}{
		// Releases.
		{">= 1.0, < 2.0", true},
		{">= 2.0, < 1.0", false},
		{"> 1.0, < 1.0", false},
		{"> 1.0, <= 1.0", false},
		{">= 1.0, <= 1.0", true},
		{"= 1.0, = 2.0", false},
		{"= 1.0, = 1.0.0", true},
		{"= 1.0, != 1.0.0", false},
		{"!= 1.0", true},
		{"!= 0.0.0", true},
		{"< 0.0.0", false},
		{"<= 0.0.0", true},
		{"> 1.0.0, < 1.0.1", false}, // nothing between consecutive patches
		{"> 1.0.0, < 1.0.2", true},
		{"> 1.0.0, < 1.0.0.1", false}, // 1.0.0.1 is no canonical version
		{"> 1.0.0, <= 1.0.0.1", false},
		{"= 1.0.0.1", false},
		{"= 1.0.0.0", true},
		{">= 1.0.0, <= 1.0.1, != 1.0.0", true},
		{">= 1.0.0, <= 1.0.1, != 1.0.0, != 1.0.1", false},
		{">= 1.0.0, != 1.0.0, != 1.0.1, != 1.0.2", true},
		{"~> 1.2", true},
		{"~> 1.2, >= 2.0", false},     // ~> 1.2 is < 2.0.0
		{"~> 1, >= 9.0", true},        // ~> 1 has no upper bound in go-version
		{"~> 1.2.3, >= 1.3.0", false}, // ~> 1.2.3 is < 1.3.0
		{"~> 1.2.3, < 1.2.3", false},  //
		{"~> 1.2.3.4", false},         // needs a fourth number
		{"> 1.9223372036854775807.9223372036854775807", true},
		{"> 9223372036854775807.9223372036854775807.9223372036854775807", false},
		{"= v1.0.0+b1", true},
		// Pre-releases.
		{">= 1.0.0-alpha", true},
		{">= 1.0.0-alpha, < 1.0.0", false}, // go-version: "< 1.0.0" admits no pre-release
		{"~> 1.2.3-beta", true},
		{"~> 1.2.3-beta, >= 1.2.3", false}, // a release bound admits no pre-release; ~> a pre-release no release
		{"> 1.0.0-alpha, < 1.0.0-beta", true},
		{"> 1.0.0-alpha, < 1.0.0-alpha.1.0", true}, // alpha.0 and alpha.1
		{"> 1.0.0-b, < 1.0.0-a", false},
		{"> 1.0.0-alpha, < 1.0.0-alpha.0", true},   // go-version: alpha < alpha.0.- < alpha.0
		{"> 1.0.0-alpha, < 1.0.0-alpha.1", true},   // alpha.0
		{"> 1.0.0-alpha.1, < 1.0.0-alpha.2", true}, // alpha.1.0
		{"> 1.0.0-a.b, < 1.0.0-a", true},           // go-version: a.b < a.c < a
		{"> 1.0.0-rc.1, < 2.0.0-rc.1", true},       // 1.0.0
		{"> 1.0.0-rc.1, < 1.0.0", false},           // "< 1.0.0" admits no pre-release, and no release lies between
		{"= 1.0.0-rc.1", true},
		{"= 1.0.0-rc.1, != 1.0.0-rc.1", false},
		{"= 1.0.0-01", false}, // canonical 1.0.0-1 is not equal to it in go-version
		{"= 1.0.0.0-beta", true},
		{"= 1.0.0.0, != 1.0.0", true}, // go-version: 1.0.0.0 equals every pre-release of 1.0.0
		{"> 1.0.0-a~, < 1.0.0-b", true},
	} {
		cs, err := version.NewConstraint(tc.rng)
		if err != nil {
			t.Fatalf("%q: %v", tc.rng, err)
		}
		w, ok := witness(cs)
		if ok != tc.want {
			t.Errorf("%q: satisfiable %v (witness %q), want %v", tc.rng, ok, w, tc.want)
			continue
		}
		if w != "" && (CheckVersion(w) != nil || !cs.Check(version.Must(version.NewVersion(w)))) {
			t.Errorf("%q: witness %q is not a canonical version that satisfies it", tc.rng, w)
		}
	}
}

// grid is a set of canonical versions for brute force: every triple over
// {0, 1, 2} with no pre-release or one of up to two identifiers.
func grid() []*version.Version {
	ids := []string{"0", "1", "2", "a", "b", "a-", "-", "b0"}
	pres := []string{""}
	for _, a := range ids {
		pres = append(pres, a)
		for _, b := range ids {
			pres = append(pres, a+"."+b)
		}
	}
	var out []*version.Version
	for x := range 3 {
		for y := range 3 {
			for z := range 3 {
				for _, p := range pres {
					s := triple{int64(x), int64(y), int64(z)}.String()
					if p != "" {
						s += "-" + p
					}
					out = append(out, version.Must(version.NewVersion(s)))
				}
			}
		}
	}
	return out
}

// randomRange writes a range of 1 to 4 constraints over versions near the
// grid, in canonical and other spellings.
func randomRange(r *rand.Rand) string {
	ops := []string{"=", "!=", ">", ">=", "<", "<=", "~>", ""}
	nums := []string{"0", "1", "2", "3"}
	ids := []string{"0", "1", "2", "a", "b", "a-", "-", "01", "c~"}
	n := 1 + r.IntN(4)
	parts := make([]string, n)
	for i := range parts {
		v := nums[r.IntN(len(nums))]
		for range r.IntN(4) {
			v += "." + nums[r.IntN(len(nums))]
		}
		if r.IntN(2) == 0 {
			v += "-" + ids[r.IntN(len(ids))]
			if r.IntN(2) == 0 {
				v += "." + ids[r.IntN(len(ids))]
			}
		}
		parts[i] = ops[r.IntN(len(ops))] + " " + v
	}
	return strings.Join(parts, ", ")
}

// checkAgainstGrid holds witness to brute force: a witness satisfies the
// range, and a range found unsatisfiable has no satisfying grid version.
func checkAgainstGrid(t *testing.T, g []*version.Version, rng string) {
	t.Helper()
	cs, err := version.NewConstraint(rng)
	if err != nil {
		return
	}
	w, ok := witness(cs)
	if ok {
		if w != "" && (CheckVersion(w) != nil || !cs.Check(version.Must(version.NewVersion(w)))) {
			t.Errorf("%q: witness %q is not a canonical version that satisfies it", rng, w)
		}
		return
	}
	for _, v := range g {
		if cs.Check(v) {
			t.Errorf("%q: found unsatisfiable, but %s satisfies it", rng, v.Original())
			return
		}
	}
}

func TestWitnessMatchesBruteForce(t *testing.T) {
	g := grid()
	r := rand.New(rand.NewPCG(1, 2))
	n := 10000
	if testing.Short() {
		n = 1000
	}
	unsat := 0
	for range n {
		rng := randomRange(r)
		checkAgainstGrid(t, g, rng)
		if cs, err := version.NewConstraint(rng); err == nil {
			if _, ok := witness(cs); !ok {
				unsat++
			}
		}
	}
	// The generator must produce both answers, or the test shows nothing.
	if unsat < n/20 || unsat > n-n/20 {
		t.Errorf("%d of %d ranges unsatisfiable: the generator is lopsided", unsat, n)
	}
}

func FuzzWitness(f *testing.F) {
	for _, s := range []string{">= 2.0, < 1.0", "> 1.0.0-alpha, < 1.0.0-alpha.1", "~> 1.2.3-beta", "!= 1.0, = 1.0.0.0"} {
		f.Add(s)
	}
	g := grid()
	f.Fuzz(func(t *testing.T, rng string) {
		if len(rng) > MaxRangeLen {
			return
		}
		checkAgainstGrid(t, g, rng)
	})
}
