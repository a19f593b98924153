package api

import (
	"context"
	"errors"
	"fmt"
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

func TestWaitUntil(t *testing.T) {
	errDone := errors.New("done")
	notFound := &StatusError{Code: 404, Body: "no such container"}
	unavailable := &StatusError{Code: 503, Body: "no leader"}
	type answer struct {
		idx uint64
		v   string
		err error
	}
	cases := []struct {
		name    string
		answers []answer
		until   func(string, error) (bool, error)
		want    error
		queries []uint64 // the WaitIndex of each query
		told    []string // what until was told
	}{
		{
			name:    "waits until the condition holds",
			answers: []answer{{5, "starting", nil}, {6, "starting", nil}, {9, "running", nil}},
			until:   func(v string, err error) (bool, error) { return v == "running", err },
			queries: []uint64{0, 5, 6},
			told:    []string{"starting", "starting", "running"},
		},
		{
			name:    "the condition's error ends the wait",
			answers: []answer{{5, "failed", nil}},
			until:   func(v string, _ error) (bool, error) { return v == "failed", errDone },
			want:    errDone,
			queries: []uint64{0},
			told:    []string{"failed"},
		},
		{
			name:    "a retryable error backs off and asks again, unseen by the condition",
			answers: []answer{{5, "starting", nil}, {0, "", unavailable}, {7, "running", nil}},
			until:   func(v string, err error) (bool, error) { return v == "running", err },
			queries: []uint64{0, 5, 5},
			told:    []string{"starting", "running"},
		},
		{
			name:    "an error retrying would not mend is the condition's to judge",
			answers: []answer{{5, "draining", nil}, {0, "", notFound}},
			until: func(_ string, err error) (bool, error) {
				if IsNotFound(err) {
					return true, nil // gone: what a wait for the end wants
				}
				return false, err
			},
			queries: []uint64{0, 5},
			told:    []string{"draining", "error"},
		},
		{
			name:    "an index that goes backwards starts over from 0",
			answers: []answer{{9, "a", nil}, {3, "b", nil}, {4, "c", nil}},
			until:   func(v string, err error) (bool, error) { return v == "c", err },
			queries: []uint64{0, 9, 0},
			told:    []string{"a", "b", "c"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var queries []uint64
			var told []string
			fetch := func(_ context.Context, q *QueryOptions) (string, *QueryMeta, error) {
				queries = append(queries, q.WaitIndex)
				if len(queries) > len(tc.answers) {
					t.Fatalf("query %d: the wait should have ended", len(queries))
				}
				a := tc.answers[len(queries)-1]
				if a.err != nil {
					return "", nil, a.err
				}
				return a.v, &QueryMeta{LastIndex: a.idx}, nil
			}
			until := func(v string, err error) (bool, error) {
				if err != nil {
					told = append(told, "error")
				} else {
					told = append(told, v)
				}
				return tc.until(v, err)
			}
			err := WaitUntil(context.Background(), WatchConfig{MinBackoff: time.Millisecond}, fetch, until)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			if fmt.Sprint(queries) != fmt.Sprint(tc.queries) {
				t.Errorf("queries at %v, want %v", queries, tc.queries)
			}
			if fmt.Sprint(told) != fmt.Sprint(tc.told) {
				t.Errorf("until told %q, want %q", told, tc.told)
			}
		})
	}

	t.Run("ends with ctx", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		fetch := func(ctx context.Context, _ *QueryOptions) (string, *QueryMeta, error) {
			return "", nil, unavailable
		}
		err := WaitUntil(ctx, WatchConfig{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}, fetch,
			func(string, error) (bool, error) { return true, errDone })
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want the deadline", err)
		}
	})
}
