package api

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"

	version "github.com/hashicorp/go-version"
)

// The wire rules: what the registry accepts as a name, a version and a
// version range. The registry's HTTP API, the gateway, the SDK and the
// Terraform provider all call these functions, so that one value is never
// accepted by one of them and refused by another. Each returns the reason a
// value is refused, without the field: the caller names the field
// ("version: ...").

// Limits of the wire rules.
const (
	// MaxNameLen is the longest name: of a service, a node, a container.
	MaxNameLen = 63
	// MaxVersionLen is the longest version string.
	MaxVersionLen = 128
	// MaxRangeLen is the longest version range.
	MaxRangeLen = 512
)

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// CheckName checks a name: 1 to 63 lowercase letters, digits and dashes,
// starting with a letter or digit.
func CheckName(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	if !nameRE.MatchString(s) {
		return fmt.Errorf("%q is not a valid name: use 1 to %d lowercase letters, digits and dashes, starting with a letter or digit", s, MaxNameLen)
	}
	return nil
}

// CheckVersion checks that s is a version written in its one canonical
// spelling: MAJOR.MINOR.PATCH, optionally followed by a pre-release
// ("2.0.0-rc.1"), with no "v" prefix, no build metadata and no leading
// zeros. go-version reads "1", "1.0", "v1.0.0" and "1.0.0+b1" as the same
// version; the registry would hold them as different versions of one
// service, and the router could only break the tie on the string. So every
// version has one spelling, and the error names it when there is one:
// `"v1.0" is not canonical; write "1.0.0"`.
func CheckVersion(s string) error {
	v, err := parseVersion(s)
	if err != nil {
		return err
	}
	canon, ok := canonicalVersion(v)
	switch {
	case ok && canon == s:
		return nil
	case ok:
		return fmt.Errorf("%q is not canonical; write %q", s, canon)
	}
	return fmt.Errorf("%q is not canonical: write MAJOR.MINOR.PATCH with an optional pre-release of letters, digits, dashes and dots, such as 1.4.2 or 2.0.0-rc.1", s)
}

// parseVersion is what every version must pass before its spelling is
// judged.
func parseVersion(s string) (*version.Version, error) {
	if s == "" {
		return nil, errors.New("must not be empty")
	}
	if len(s) > MaxVersionLen {
		return nil, fmt.Errorf("is longer than %d characters", MaxVersionLen)
	}
	v, err := version.NewVersion(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not a valid version: write a semantic version such as 1.4.2 (%s)", s, err)
	}
	return v, nil
}

// canonicalVersion spells v canonically. It reports false when no canonical
// version equals v: more than three numbers that are not trailing zeros, or a
// pre-release identifier that semantic versioning does not allow.
func canonicalVersion(v *version.Version) (string, bool) {
	segs := v.Segments64()
	for _, s := range segs[3:] {
		if s != 0 {
			return "", false
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d.%d.%d", segs[0], segs[1], segs[2])
	if pre := v.Prerelease(); pre != "" {
		b.WriteByte('-')
		for i, id := range strings.Split(pre, ".") {
			c, ok := canonicalIdentifier(id)
			if !ok {
				return "", false
			}
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(c)
		}
	}
	return b.String(), true
}

// canonicalIdentifier spells one pre-release identifier canonically: digits
// without leading zeros (a number go-version can read), or letters, digits
// and dashes that go-version does not read as a number ("-1" it does).
func canonicalIdentifier(id string) (string, bool) {
	if id == "" || strings.Trim(id, "0123456789") == "" {
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil {
			return "", false
		}
		return strconv.FormatInt(n, 10), true
	}
	if !identChars(id) {
		return "", false
	}
	if _, err := strconv.ParseInt(id, 10, 64); err == nil {
		return "", false
	}
	return id, true
}

// identChars reports whether s holds only the characters semantic
// versioning allows in an identifier.
func identChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isIdentChar(s[i]) {
			return false
		}
	}
	return true
}

func isIdentChar(c byte) bool {
	return c == '-' || '0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z'
}

// CheckVersionSyntax checks only that go-version reads s, within the length
// limit: the rule versions were held to before CheckVersion. Use it where a
// version already stored must still be named (to retire or purge it), never
// to accept a new one.
func CheckVersionSyntax(s string) error {
	_, err := parseVersion(s)
	return err
}

// CheckRange checks a version range such as ">= 1.0, < 2.0" or "~> 1.4":
// go-version must read it, and at least one canonical version must satisfy
// it. `">= 2.0, < 1.0" admits no version` is refused, since a version
// declared with it could serve no client, and a client requiring it could
// call nothing.
func CheckRange(s string) error {
	cs, err := parseRange(s)
	if err != nil {
		return err
	}
	if ok := rangeCache.satisfiable(s, cs); !ok {
		return fmt.Errorf("%q admits no version", s)
	}
	return nil
}

// CheckRangeSyntax checks only that go-version reads s, within the length
// limit: the rule ranges were held to before CheckRange.
func CheckRangeSyntax(s string) error {
	_, err := parseRange(s)
	return err
}

func parseRange(s string) (version.Constraints, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("must not be empty")
	}
	if len(s) > MaxRangeLen {
		return nil, fmt.Errorf("is longer than %d characters", MaxRangeLen)
	}
	cs, err := version.NewConstraint(s)
	if err != nil {
		return nil, fmt.Errorf(`%q is not a valid version range: write comma-separated constraints such as ">= 1.0, < 2.0" or "~> 1.4" (%s)`, s, err)
	}
	return cs, nil
}

// rangeCache remembers which ranges are satisfiable: the registry checks the
// range of every version it is asked to declare, and a range is declared
// again and again. It forgets everything when it grows too large.
var rangeCache = &satCache{m: map[string]bool{}}

const maxCachedRanges = 4096

type satCache struct {
	mu sync.Mutex
	m  map[string]bool
}

func (c *satCache) satisfiable(s string, cs version.Constraints) bool {
	c.mu.Lock()
	ok, hit := c.m[s]
	c.mu.Unlock()
	if hit {
		return ok
	}
	_, ok = witness(cs)
	c.mu.Lock()
	if len(c.m) >= maxCachedRanges {
		clear(c.m)
	}
	c.m[s] = ok
	c.mu.Unlock()
	return ok
}
