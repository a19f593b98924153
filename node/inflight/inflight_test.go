package inflight

import (
	"maps"
	"sync"
	"testing"
)

func TestInflightCounts(t *testing.T) {
	f := New()
	if n := f.Total("c1"); n != 0 {
		t.Fatalf("Total of an unknown container = %d, want 0", n)
	}
	if s := f.Snapshot("c1"); s == nil || len(s) != 0 {
		t.Fatalf("Snapshot of an unknown container = %#v, want an empty map", s)
	}

	a := f.Begin("c1", "greeter@1.0.0")
	b := f.Begin("c1", "greeter@1.0.0")
	c := f.Begin("c1", "orders@2.0.0")
	d := f.Begin("c2", "greeter@1.0.0")
	f.Add("c2", "greeter@1.0.0", 2)

	tests := []struct {
		container string
		total     int
		snapshot  map[string]int
	}{
		{"c1", 3, map[string]int{"greeter@1.0.0": 2, "orders@2.0.0": 1}},
		{"c2", 3, map[string]int{"greeter@1.0.0": 3}},
	}
	for _, tt := range tests {
		if got := f.Total(tt.container); got != tt.total {
			t.Errorf("Total(%s) = %d, want %d", tt.container, got, tt.total)
		}
		if got := f.Snapshot(tt.container); !maps.Equal(got, tt.snapshot) {
			t.Errorf("Snapshot(%s) = %v, want %v", tt.container, got, tt.snapshot)
		}
	}

	a.End()
	c.End()
	if got, want := f.Snapshot("c1"), map[string]int{"greeter@1.0.0": 1}; !maps.Equal(got, want) {
		t.Errorf("after two ends Snapshot(c1) = %v, want %v (keys at zero left out)", got, want)
	}
	b.End()
	if n := f.Total("c1"); n != 0 {
		t.Errorf("Total(c1) after every end = %d, want 0", n)
	}

	// A call that began before Forget ends without touching what comes after.
	f.Forget("c2")
	if n := f.Total("c2"); n != 0 {
		t.Errorf("Total(c2) after Forget = %d, want 0", n)
	}
	e := f.Begin("c2", "greeter@1.0.0")
	d.End()
	if n := f.Total("c2"); n != 1 {
		t.Errorf("Total(c2) = %d after an old call ended, want 1", n)
	}
	e.End()
	Call{}.End() // the zero Call counts nothing
}

func TestInflightEach(t *testing.T) {
	f := New()
	f.Begin("c1", "a@1")
	f.Begin("c2", "a@1").End()
	got := map[string]int{}
	f.Each(func(id string, n int) { got[id] = n })
	if want := map[string]int{"c1": 1, "c2": 0}; !maps.Equal(got, want) {
		t.Errorf("each = %v, want %v", got, want)
	}
}

func TestInflightAllocs(t *testing.T) {
	f := New()
	f.Begin("c1", "greeter@1.0.0").End()
	allocs := testing.AllocsPerRun(1000, func() {
		f.Begin("c1", "greeter@1.0.0").End()
	})
	if allocs != 0 {
		t.Errorf("Begin and End allocate %.1f times for a known key, want 0", allocs)
	}
}

// TestInflightRace runs Begin, End, Snapshot, Total and Forget together; run
// with -race.
func TestInflightRace(t *testing.T) {
	f := New()
	const workers, calls = 8, 2000
	containers := []string{"c1", "c2", "c3"}
	keys := []string{"greeter@1.0.0", "greeter@2.0.0", "orders@1.0.0"}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range calls {
				c := f.Begin(containers[(w+i)%len(containers)], keys[i%len(keys)])
				if i%3 == 0 {
					f.Add(containers[w%len(containers)], keys[w%len(keys)], 1)
					f.Add(containers[w%len(containers)], keys[w%len(keys)], -1)
				}
				c.End()
			}
		})
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	readers.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, c := range containers {
				_ = f.Total(c)
				_ = f.Snapshot(c)
			}
			f.Each(func(string, int) {})
		}
	})
	readers.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			f.Forget("c3")
		}
	})
	wg.Wait()
	close(stop)
	readers.Wait()
	for _, c := range containers[:2] {
		if n := f.Total(c); n != 0 {
			t.Errorf("Total(%s) = %d after every call ended, want 0", c, n)
		}
		for k, n := range f.Snapshot(c) {
			t.Errorf("Snapshot(%s)[%s] = %d after every call ended", c, k, n)
		}
	}
}
