package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"
)

// Dist is a distribution of durations that the simulator samples: a
// constant ("5ms"), uniform ("uniform(1ms, 5ms)"), exponential with a mean
// ("exp(5ms)", cut at eight times the mean) or normal ("normal(10ms, 2ms)",
// cut at zero and at four deviations above the mean). Every distribution
// has a finite maximum, which bounds how stale a view can be.
type Dist struct {
	kind distKind
	a, b time.Duration
}

type distKind uint8

const (
	distConst distKind = iota
	distUniform
	distExp
	distNormal
)

// Const returns a distribution that always gives d.
func Const(d time.Duration) Dist { return Dist{kind: distConst, a: d} }

// Uniform returns a distribution uniform over [lo, hi].
func Uniform(lo, hi time.Duration) Dist {
	if hi < lo {
		lo, hi = hi, lo
	}
	return Dist{kind: distUniform, a: lo, b: hi}
}

// Exp returns an exponential distribution of the given mean, cut at eight
// times the mean.
func Exp(mean time.Duration) Dist { return Dist{kind: distExp, a: mean} }

// Normal returns a normal distribution, cut at 0 and at mean+4·sd.
func Normal(mean, sd time.Duration) Dist { return Dist{kind: distNormal, a: mean, b: sd} }

// ParseDist reads a distribution written as Dist.String writes it.
func ParseDist(s string) (Dist, error) {
	s = strings.TrimSpace(s)
	open := strings.IndexByte(s, '(')
	if open < 0 {
		d, err := parseDuration(s)
		if err != nil {
			return Dist{}, err
		}
		return Const(d), nil
	}
	if !strings.HasSuffix(s, ")") {
		return Dist{}, fmt.Errorf("%q: missing closing parenthesis", s)
	}
	name := strings.TrimSpace(s[:open])
	var args []time.Duration
	for _, part := range strings.Split(s[open+1:len(s)-1], ",") {
		d, err := parseDuration(strings.TrimSpace(part))
		if err != nil {
			return Dist{}, fmt.Errorf("%s: %w", name, err)
		}
		args = append(args, d)
	}
	want := map[string]int{"uniform": 2, "exp": 1, "normal": 2}
	n, ok := want[name]
	if !ok {
		return Dist{}, fmt.Errorf("%q: unknown distribution %q (known: a duration, uniform(lo, hi), exp(mean), normal(mean, sd))", s, name)
	}
	if len(args) != n {
		return Dist{}, fmt.Errorf("%q: %s takes %d durations, got %d", s, name, n, len(args))
	}
	switch name {
	case "uniform":
		if args[1] < args[0] {
			return Dist{}, fmt.Errorf("%q: uniform(lo, hi) needs lo <= hi", s)
		}
		return Uniform(args[0], args[1]), nil
	case "exp":
		return Exp(args[0]), nil
	default:
		return Normal(args[0], args[1]), nil
	}
}

func parseDuration(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (e.g. 250ms, 2s, 1m30s)", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return d, nil
}

// Sample draws one duration. A constant draws nothing from r.
func (d Dist) Sample(r *rand.Rand) time.Duration {
	switch d.kind {
	case distUniform:
		if d.b <= d.a {
			return d.a
		}
		return d.a + time.Duration(r.Int64N(int64(d.b-d.a)+1))
	case distExp:
		x := time.Duration(r.ExpFloat64() * float64(d.a))
		return min(x, 8*d.a)
	case distNormal:
		x := time.Duration(r.NormFloat64()*float64(d.b)) + d.a
		return max(0, min(x, d.a+4*d.b))
	}
	return d.a
}

// Max is the largest duration Sample can give.
func (d Dist) Max() time.Duration {
	switch d.kind {
	case distUniform:
		return d.b
	case distExp:
		return 8 * d.a
	case distNormal:
		return d.a + 4*d.b
	}
	return d.a
}

// Mean is the distribution's mean, ignoring the cuts.
func (d Dist) Mean() time.Duration {
	switch d.kind {
	case distUniform:
		return (d.a + d.b) / 2
	}
	return d.a
}

func (d Dist) String() string {
	switch d.kind {
	case distUniform:
		return fmt.Sprintf("uniform(%s, %s)", d.a, d.b)
	case distExp:
		return fmt.Sprintf("exp(%s)", d.a)
	case distNormal:
		return fmt.Sprintf("normal(%s, %s)", d.a, d.b)
	}
	return d.a.String()
}

// IsZero reports whether d always gives 0.
func (d Dist) IsZero() bool { return d.kind == distConst && d.a == 0 }

// expInterval draws the time to the next event of a Poisson process of the
// given rate per second; +Inf rates are not expected.
func expInterval(r *rand.Rand, perSecond float64) int64 {
	if perSecond <= 0 {
		return math.MaxInt64
	}
	x := r.ExpFloat64() / perSecond * float64(time.Second)
	if x < 1 {
		return 1
	}
	if x > float64(math.MaxInt64/4) {
		return math.MaxInt64 / 4
	}
	return int64(x)
}
