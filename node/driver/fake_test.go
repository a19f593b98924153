package driver

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestFakeLifecycle(t *testing.T) {
	t.Parallel()
	f := NewFake()
	ctx := context.Background()
	h, err := f.Start(ctx, Spec{ID: "c1", Command: "svc"})
	if err != nil || h.PID != 1000 || h.Port != DefaultPortMin || h.Endpoint != "127.0.0.1:21000" {
		t.Fatalf("Start = %+v, %v", h, err)
	}
	if _, err := f.Start(ctx, Spec{ID: "c1", Command: "svc"}); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Start = %v, want ErrRunning", err)
	}
	w1, _ := f.Wait(ctx, "c1")
	w2, _ := f.Wait(ctx, "c1")
	if err := f.Stop(ctx, "c1", time.Second); err != nil {
		t.Fatal(err)
	}
	for _, w := range []<-chan ExitResult{w1, w2} {
		if r := receive(t, w); r.Signal != 15 || r.ExitCode != 143 {
			t.Fatalf("exit = %+v, want SIGTERM", r)
		}
	}
	if err := f.Stop(ctx, "c1", time.Second); err != nil {
		t.Fatalf("second Stop = %v", err)
	}
	if st, _ := f.Inspect("c1"); st.State != StateExited {
		t.Fatalf("Inspect = %+v", st)
	}
	if got := f.CallsOf("stop"); !slices.Equal(got, []string{"c1", "c1"}) {
		t.Fatalf("stop calls = %v", got)
	}
	if err := f.Remove("c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Inspect("c1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Inspect after Remove = %v", err)
	}
}

func TestFakeProgrammedOutcomes(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	f := &Fake{
		StartFunc: func(s Spec) (FakeProcess, error) {
			switch s.ID {
			case "bad":
				return FakeProcess{}, boom
			case "crash":
				return FakeProcess{ExitAfter: 10 * time.Millisecond, ExitCode: 3, Output: "a\nb\npanic: oops\n"}, nil
			case "stubborn":
				return FakeProcess{IgnoreTerm: true}, nil
			}
			return FakeProcess{}, nil
		},
	}
	ctx := context.Background()
	if _, err := f.Start(ctx, Spec{ID: "bad", Command: "x"}); !errors.Is(err, boom) {
		t.Fatalf("Start(bad) = %v", err)
	}
	if _, err := f.Start(ctx, Spec{ID: "crash", Command: "x"}); err != nil {
		t.Fatal(err)
	}
	w, _ := f.Wait(ctx, "crash")
	if r := receive(t, w); r.ExitCode != 3 {
		t.Fatalf("crash exit = %+v", r)
	}
	if s, _ := f.Tail("crash", 2); s != "b\npanic: oops" {
		t.Fatalf("Tail = %q", s)
	}
	if _, err := f.Start(ctx, Spec{ID: "stubborn", Command: "x"}); err != nil {
		t.Fatal(err)
	}
	_ = f.Stop(ctx, "stubborn", time.Second)
	if st, _ := f.Inspect("stubborn"); st.Exit == nil || st.Exit.Signal != 9 {
		t.Fatalf("stubborn = %+v", st)
	}
	if got := f.Running(); len(got) != 0 {
		t.Fatalf("Running = %v", got)
	}
}

func TestFakeRecover(t *testing.T) {
	t.Parallel()
	f := NewFake()
	ctx := context.Background()
	h, _ := f.Start(ctx, Spec{ID: "c1", Command: "x"})
	hs, _ := f.LoadHandles()
	if len(hs) != 1 || *hs[0] != *h {
		t.Fatalf("LoadHandles = %v", hs)
	}
	stale := *h
	stale.StartTime++
	if err := f.Recover(&stale); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Recover(stale) = %v", err)
	}
	if err := f.Recover(h); err != nil {
		t.Fatal(err)
	}
	w, _ := f.Wait(ctx, "c1")
	_ = f.Exit("c1", 0)
	if r := receive(t, w); !isUnknownExit(r) {
		t.Fatalf("exit of a re-adopted process = %+v", r)
	}
}

func TestFakeConcurrent(t *testing.T) {
	t.Parallel()
	f := NewFake()
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			id := "c" + string(rune('a'+i))
			if _, err := f.Start(ctx, Spec{ID: id, Command: "x"}); err != nil {
				t.Error(err)
				return
			}
			w, _ := f.Wait(ctx, id)
			_, _ = f.Inspect(id)
			_ = f.Stop(ctx, id, 0)
			<-w
		})
	}
	wg.Wait()
	if n := len(f.CallsOf("start")); n != 20 {
		t.Fatalf("%d starts recorded", n)
	}
}
