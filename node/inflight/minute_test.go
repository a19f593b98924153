package inflight

import (
	"maps"
	"testing"
	"time"
)

func TestMinuteWindow(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var m Minute
	steps := []struct {
		at     time.Duration
		served map[string]int64
		want   map[string]int
	}{
		{0, map[string]int64{"a@1": 5}, map[string]int{}},
		{20 * time.Second, map[string]int64{"a@1": 15}, map[string]int{"a@1": 10}},
		{40 * time.Second, map[string]int64{"a@1": 35, "b@2": 1}, map[string]int{"a@1": 30, "b@2": 1}},
		// A minute after the first observation: counted from it.
		{60 * time.Second, map[string]int64{"a@1": 45, "b@2": 1}, map[string]int{"a@1": 40, "b@2": 1}},
		// The calls of the first 20 s have left the window.
		{80 * time.Second, map[string]int64{"a@1": 45, "b@2": 1}, map[string]int{"a@1": 30, "b@2": 1}},
		// Idle for a minute: nothing.
		{140 * time.Second, map[string]int64{"a@1": 45, "b@2": 1}, map[string]int{}},
		{200 * time.Second, map[string]int64{"a@1": 45, "b@2": 1}, map[string]int{}},
	}
	for _, s := range steps {
		got := m.Observe(t0.Add(s.at), s.served)
		if !maps.Equal(got, s.want) {
			t.Fatalf("at %v: calls per minute %v, want %v", s.at, got, s.want)
		}
	}
	// Observations closer than a second are used, not kept.
	for i := range 100 {
		got := m.Observe(t0.Add(200*time.Second+time.Duration(i)*time.Millisecond), map[string]int64{"a@1": 45 + int64(i), "b@2": 1})
		if got["a@1"] != i {
			t.Fatalf("%d calls in the window: %v", i, got)
		}
	}
	if len(m.samples) > 3 {
		t.Errorf("%d observations kept after a minute idle; want old ones dropped", len(m.samples))
	}
}

func TestServedCountsEveryCall(t *testing.T) {
	f := New()
	for range 3 {
		f.Begin("c1", "a@1").End()
	}
	c := f.Begin("c1", "b@2")
	got := f.Served("c1")
	c.End()
	if !maps.Equal(got, map[string]int64{"a@1": 3, "b@2": 1}) {
		t.Fatalf("served %v, want a@1: 3, b@2: 1", got)
	}
	if len(f.Served("c2")) != 0 {
		t.Fatal("served for an unknown container")
	}
}
