package httpd

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sync"

	"github.com/coexist-dev/coexist/raftregistry/state"
)

// answerCache keeps the latest encoded answer of each list query, by the
// index of the tables it read. One change wakes every watcher of a table at
// once; with the cache they share one read and one encoding instead of
// each sorting, converting and encoding the same records.
type answerCache struct {
	mu sync.Mutex
	m  map[string]cachedAnswer
}

type cachedAnswer struct {
	idx  uint64
	body []byte
}

// maxCachedQueries bounds the cache; past it the cache starts afresh.
const maxCachedQueries = 1024

func (c *answerCache) get(key string, idx uint64) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.m[key]
	if !ok || a.idx != idx {
		return nil, false
	}
	return a.body, true
}

func (c *answerCache) put(key string, idx uint64, body []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCachedQueries {
		c.m = make(map[string]cachedAnswer)
	}
	if a, ok := c.m[key]; ok && a.idx > idx {
		return
	}
	c.m[key] = cachedAnswer{idx: idx, body: body}
}

func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// blockingCached is blocking for a list query whose answer depends only on
// the given tables and on key (the query and what the caller may see).
func (s *Server) blockingCached(w http.ResponseWriter, r *http.Request, c *call, key string, tables []state.Table, read readFunc) error {
	return s.blockingWith(w, r, c, read, func(st *state.Store) (uint64, state.WatchSet, []byte, bool) {
		idx, ws := st.Watch(tables...)
		body, ok := s.cache.get(key, idx)
		return idx, ws, body, ok
	}, func(idx uint64, v any) []byte {
		body, err := encodeJSON(v)
		if err != nil {
			return nil
		}
		s.cache.put(key, idx, body)
		return body
	})
}
