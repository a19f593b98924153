package driver

import (
	"errors"
	"testing"
)

func TestPortPool(t *testing.T) {
	t.Parallel()
	busy := map[int]bool{101: true}
	p := newPortPool(100, 104)
	p.free = func(port int) bool { return !busy[port] }

	seen := map[int]bool{}
	for _, id := range []string{"a", "b", "c", "d"} {
		port, err := p.alloc(id)
		if err != nil {
			t.Fatalf("alloc(%s): %v", id, err)
		}
		if seen[port] || busy[port] {
			t.Fatalf("alloc(%s) = %d: handed out twice or busy", id, port)
		}
		seen[port] = true
	}
	if _, err := p.alloc("e"); !errors.Is(err, ErrNoPort) {
		t.Fatalf("alloc with the range full = %v, want ErrNoPort", err)
	}
	// Release 100 and 102: the search goes on after the last port handed
	// out, so 100 comes back before... only after wrapping around.
	p.release(100, "a")
	p.release(102, "wrong-id") // not b's to release: ignored
	if port, err := p.alloc("e"); err != nil || port != 100 {
		t.Fatalf("alloc after release = %d, %v; want 100", port, err)
	}
	p.release(102, "b")
	busy[101] = false
	port, err := p.alloc("f")
	if err != nil || port != 101 {
		t.Fatalf("alloc = %d, %v; want 101, free now and next in turn", port, err)
	}
	if prev := p.hold(103, "g"); prev != "c" {
		t.Fatalf("hold over c's port returned %q", prev)
	}
	if prev := p.hold(103, "g"); prev != "" {
		t.Fatalf("hold again returned %q", prev)
	}
}
