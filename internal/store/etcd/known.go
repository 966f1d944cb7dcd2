package etcd

import (
	"slices"
	"strings"
	"sync"
)

// knownLimit bounds how many keys known holds; past it, it starts again.
const knownLimit = 1024

// known is what this host last read or wrote of some keys, with their
// ModRevision, so that a write transaction reads them without a round trip
// to the cluster: the key record, the index, the name index, and a secret
// record's absence (an ID prefix that is no ID). Its commit compares their
// revisions, so an out-of-date entry costs a lost attempt, never a wrong
// write. A present secret record is never taken from it: its version is
// checked against this host's high-water mark as it is read, and an
// out-of-date copy would be refused as a rollback.
type known struct {
	mu   sync.Mutex
	keys map[string]knownKey
}

type knownKey struct {
	value []byte // nil: absent
	mod   int64
	// rev is the cluster's revision when the value was seen: an older
	// answer arriving late does not replace it.
	rev int64
}

// saw records what the cluster answered for key at revision rev: its
// value v (nil: absent) at ModRevision mod. Only the keys known is for are
// kept.
func (b *Backend) saw(key string, v []byte, mod, rev int64) {
	bucket, _, _ := strings.Cut(strings.TrimPrefix(key, b.prefix), "/")
	b.known.saw(key, v, mod, rev, bucket == "meta" || bucket == "names" || v == nil)
}

// get returns a copy of key's known value (nil when known absent) and its
// ModRevision.
func (k *known) get(key string) ([]byte, int64, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.keys[key]
	if !ok {
		return nil, 0, false
	}
	return slices.Clone(e.value), e.mod, true
}

// saw records key's value v at ModRevision mod, as the cluster answered at
// revision rev; a value that may not be kept drops what was known.
func (k *known) saw(key string, v []byte, mod, rev int64, keep bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if e, ok := k.keys[key]; ok && e.rev > rev {
		return
	}
	if !keep {
		delete(k.keys, key)
		return
	}
	if k.keys == nil || len(k.keys) >= knownLimit {
		k.keys = map[string]knownKey{}
	}
	if v != nil {
		v = slices.Clone(v)
	}
	k.keys[key] = knownKey{value: v, mod: mod, rev: rev}
}

// forget drops keys, which a transaction found or may have found out of
// date.
func (k *known) forget(keys []string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, key := range keys {
		delete(k.keys, key)
	}
}
