package store

import (
	"encoding/json"
	"fmt"
	"hash/maphash"
	"maps"
	"sync"

	"github.com/secretd/secretd/internal/store/envelope"
)

// listCache keeps the decoded metadata of each record beside a hash of
// the bytes it was decoded from. Decoding is what a List of many secrets
// spends its time on (a record carries every kept version's wrapped key and
// ciphertext, which the JSON decoder has to scan past); hashing the same
// bytes costs a small fraction of that. Entries are checked against the
// bytes the backend returns on every List, so a write by another host
// sharing an etcd store, or any other change, is picked up without the
// cache having to hear of it.
type listCache struct {
	seed maphash.Seed

	mu sync.Mutex
	m  map[string]listEntry
}

type listEntry struct {
	sum uint64
	n   int
	r   *record // metadata only: no envelopes; never handed out
	// by is the MAC key r was authenticated with; nil when not yet.
	by *envelope.Key
}

func newListCache() *listCache {
	return &listCache{seed: maphash.MakeSeed(), m: map[string]listEntry{}}
}

// lookup returns the metadata of record value v stored under key, decoding
// it only when the cache holds none for exactly these bytes, and checks it
// with check (verified says its MAC was already checked under this MAC key). Its result must not be
// modified.
func (c *listCache) lookup(key string, v []byte, seen map[string]listEntry, by *envelope.Key, check func(r *record, verified bool) error) (*record, error) {
	sum := maphash.Bytes(c.seed, v)
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if !ok || e.sum != sum || e.n != len(v) {
		var m recordMeta
		if err := json.Unmarshal(v, &m); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		e = listEntry{sum: sum, n: len(v), r: m.record()}
	}
	if !e.r.valid() {
		return nil, fmt.Errorf("%w: secret %s: record holds no version", ErrCorrupt, key)
	}
	verified := by != nil && e.by == by
	if err := check(e.r, verified); err != nil {
		return nil, err
	}
	e.by = by
	if seen == nil {
		// A record read on its own (GetNames): cached at once, where a
		// List's pass replaces the cache whole at its end.
		c.mu.Lock()
		c.m[key] = e
		c.mu.Unlock()
	} else {
		seen[key] = e
	}
	return e.r, nil
}

// replace keeps exactly the entries a complete pass over the records saw,
// so removed secrets leave the cache.
func (c *listCache) replace(seen map[string]listEntry) {
	c.mu.Lock()
	c.m = seen
	c.mu.Unlock()
}

// secretCopy is r.secret() with nothing shared with the cached record.
func secretCopy(r *record) Secret {
	s := r.secret()
	s.Labels = maps.Clone(r.Labels)
	return s
}
