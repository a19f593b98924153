package api

import (
	"context"
	"math/rand/v2"
	"time"
)

// WatchConfig configures Watch.
type WatchConfig struct {
	// WaitTime is the wait of each blocking query (default 5m).
	WaitTime time.Duration
	// AllowStale lets any server answer (default false: the leader).
	AllowStale bool
	// MinBackoff and MaxBackoff bound the pause after an error (defaults
	// 100ms and 10s); the pause doubles on each error in a row.
	MinBackoff, MaxBackoff time.Duration
	// OnError, when set, is told of each failed query and the pause that
	// follows.
	OnError func(err error, backoff time.Duration)
	// Wake, when set, gives a channel for each pause after an error:
	// closing it ends the pause at once (WatchFleet wakes the other tables'
	// watches when one of them reaches the registry again).
	Wake func() <-chan struct{}
}

// Watch runs a blocking-query loop until ctx ends: it calls fetch with the
// index of the last answer and hands every answer whose index moved to
// onChange (the first answer always). When the index goes backwards (a
// restored snapshot, a new cluster) it starts over from 0; on errors it backs
// off with jitter. It returns ctx's error.
func Watch[T any](ctx context.Context, cfg WatchConfig, fetch func(context.Context, *QueryOptions) (T, *QueryMeta, error), onChange func(T, *QueryMeta)) error {
	return blocking(ctx, cfg, fetch,
		func(v T, meta *QueryMeta, moved bool) (bool, error) {
			if moved {
				onChange(v, meta)
			}
			return false, nil
		},
		func(error) (bool, error) { return false, nil })
}

// WaitUntil runs a blocking-query loop, as Watch does, until until says the
// wait is over: it is told every answer, and every error that retrying
// would not mend (IsRetryable false; a 404, say), with the zero T. It
// returns until's error, or ctx's when ctx ends first. When until does not
// end the wait on an error, the loop backs off and asks again, as it does on
// the errors worth retrying.
func WaitUntil[T any](ctx context.Context, cfg WatchConfig, fetch func(context.Context, *QueryOptions) (T, *QueryMeta, error), until func(T, error) (bool, error)) error {
	var zero T
	return blocking(ctx, cfg, fetch,
		func(v T, _ *QueryMeta, _ bool) (bool, error) { return until(v, nil) },
		func(err error) (bool, error) {
			if IsRetryable(err) {
				return false, nil
			}
			return until(zero, err)
		})
}

// blocking is the loop of Watch and WaitUntil. answer is told each answer
// and whether its index moved (the first answer's always does); failed each
// error while ctx lasts. Either ends the loop by returning true.
func blocking[T any](ctx context.Context, cfg WatchConfig, fetch func(context.Context, *QueryOptions) (T, *QueryMeta, error),
	answer func(v T, meta *QueryMeta, moved bool) (bool, error), failed func(error) (bool, error)) error {
	if cfg.WaitTime <= 0 {
		cfg.WaitTime = 5 * time.Minute
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 10 * time.Second
	}
	var index uint64
	first := true
	backoff := cfg.MinBackoff
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		q := &QueryOptions{WaitIndex: index, WaitTime: cfg.WaitTime, AllowStale: cfg.AllowStale}
		v, meta, err := fetch(ctx, q)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if done, res := failed(err); done {
				return res
			}
			pause := backoff/2 + rand.N(backoff/2+1)
			if cfg.OnError != nil {
				cfg.OnError(err, pause)
			}
			var wake <-chan struct{}
			if cfg.Wake != nil {
				wake = cfg.Wake()
			}
			timer := time.NewTimer(pause)
			select {
			case <-ctx.Done():
				timer.Stop()
				return ctx.Err()
			case <-timer.C:
			case <-wake:
				timer.Stop()
			}
			backoff = min(backoff*2, cfg.MaxBackoff)
			continue
		}
		backoff = cfg.MinBackoff
		var last uint64
		if meta != nil {
			last = meta.LastIndex
		}
		moved := first || last > index
		first = false
		if last < index {
			// The index went backwards: take this answer and start over.
			moved, last = true, 0
		}
		if done, res := answer(v, meta, moved); done {
			return res
		}
		index = last
	}
}
