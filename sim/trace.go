package sim

import "strconv"

// trace is the running hash of a run: 64-bit FNV-1a over one canonical
// record per event, written as little-endian 64-bit words (time, kind and
// subjects, then what the event decided). Two runs with the same hash took
// the same decisions at the same virtual times.
type trace struct{ h uint64 }

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func newTrace() trace { return trace{h: fnvOffset} }

// word hashes the eight bytes of w, lowest first.
func (t *trace) word(w uint64) {
	h := t.h
	for range 8 {
		h ^= w & 0xff
		h *= fnvPrime
		w >>= 8
	}
	t.h = h
}

// str hashes a string and its length.
func (t *trace) str(s string) {
	h := t.h
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	t.h = h
	t.word(uint64(len(s)))
}

// Hex is the hash as 16 lowercase hexadecimal digits.
func hashHex(h uint64) string {
	s := strconv.FormatUint(h, 16)
	for len(s) < 16 {
		s = "0" + s
	}
	return s
}
