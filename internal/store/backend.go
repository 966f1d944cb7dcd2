package store

import "context"

// Buckets are the buckets every backend holds; a migration copies exactly these.
var Buckets = []string{"meta", "secrets", "names"}

// Backend is the storage a Store keeps its records in. It sees only
// ciphertext and metadata: encryption happens above it, so a backend shared
// between hosts (etcd) never holds plaintext.
type Backend interface {
	// View runs fn in a read-only transaction.
	View(fn func(Tx) error) error
	// Update runs fn in a read-write transaction, committed only if fn
	// returns nil. A backend shared by several hosts may run fn again when
	// another writer got in first, so fn must only change state it rebuilds.
	Update(fn func(Tx) error) error
	// Close releases the backend.
	Close() error
}

// Tx is one transaction over named buckets of keys.
type Tx interface {
	// Get returns a copy of the value, or nil when the key is absent.
	Get(bucket, key string) ([]byte, error)
	// Put stores value under key.
	Put(bucket, key string, value []byte) error
	// Delete removes key; removing an absent key is not an error.
	Delete(bucket, key string) error
	// ForEach calls fn for every key of bucket in key order.
	ForEach(bucket string, fn func(key string, value []byte) error) error
}

// Prefetcher is a Tx of a backend that answers over the network (etcd):
// it fetches several keys in one round trip, for the reads its caller is
// about to make one after the other.
type Prefetcher interface {
	// Prefetch fetches keys at once; the Gets of them that follow answer
	// from what it fetched, at the transaction's revision.
	Prefetch(keys ...Key) error
	// Guess returns what the backend last saw of a key without asking
	// for it: possibly out of date, so only to choose what to prefetch.
	Guess(bucket, key string) ([]byte, bool)
}

// Key names a key of a bucket.
type Key struct{ Bucket, Key string }

// Watcher is a Backend that several hosts share, so records change under a
// Store without it writing them.
type Watcher interface {
	// Watch calls fn for every key of bucket present when it starts, then
	// for every later change (value nil for a deletion), until ctx ends or
	// the watch breaks; it returns the reason. Replaying the present state
	// first means a caller that watches again after a break misses nothing.
	Watch(ctx context.Context, bucket string, fn func(key string, value []byte)) error
}
