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
}

// Watch runs a blocking-query loop until ctx ends: it calls fetch with the
// index of the last answer and hands every answer whose index moved to
// onChange (the first answer always). When the index goes backwards (a
// restored snapshot, a new cluster) it starts over from 0; on errors it backs
// off with jitter. It returns ctx's error.
func Watch[T any](ctx context.Context, cfg WatchConfig, fetch func(context.Context, *QueryOptions) (T, *QueryMeta, error), onChange func(T, *QueryMeta)) error {
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
			pause := backoff/2 + rand.N(backoff/2+1)
			if cfg.OnError != nil {
				cfg.OnError(err, pause)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(pause):
			}
			backoff = min(backoff*2, cfg.MaxBackoff)
			continue
		}
		backoff = cfg.MinBackoff
		switch {
		case meta.LastIndex < index:
			// The index went backwards: take this answer and start over.
			index = 0
			onChange(v, meta)
			continue
		case first || meta.LastIndex > index:
			first = false
			onChange(v, meta)
		}
		index = meta.LastIndex
	}
}
