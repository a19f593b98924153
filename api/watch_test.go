package api

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestWatchDeliversChangesOnlyAndResetsOnBackwardIndex(t *testing.T) {
	answers := []struct {
		idx uint64
		err error
	}{{5, nil}, {5, nil}, {0, errors.New("boom")}, {7, nil}, {3, nil}, {4, nil}}
	var mu sync.Mutex
	var seenQ []uint64
	var got []uint64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	fetch := func(ctx context.Context, q *QueryOptions) (uint64, *QueryMeta, error) {
		mu.Lock()
		defer mu.Unlock()
		seenQ = append(seenQ, q.WaitIndex)
		if n >= len(answers) {
			cancel()
			return 0, nil, ctx.Err()
		}
		a := answers[n]
		n++
		if a.err != nil {
			return 0, nil, a.err
		}
		return a.idx, &QueryMeta{LastIndex: a.idx}, nil
	}
	err := Watch(ctx, WatchConfig{MinBackoff: time.Millisecond}, fetch, func(v uint64, _ *QueryMeta) {
		got = append(got, v)
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	want := []uint64{5, 7, 3, 4}
	if len(got) != len(want) {
		t.Fatalf("changes = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("changes = %v, want %v", got, want)
		}
	}
	// After the backward jump to 3 the next query starts over from 0.
	wantQ := []uint64{0, 5, 5, 5, 7, 0}
	for i := range wantQ {
		if seenQ[i] != wantQ[i] {
			t.Fatalf("queries = %v, want prefix %v", seenQ, wantQ)
		}
	}
}
