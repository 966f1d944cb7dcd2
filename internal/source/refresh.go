package source

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// FetchFunc fetches one secret's current value.
type FetchFunc func(ctx context.Context) (Value, error)

// Fetcher returns a FetchFunc for req from driver, for a Refresher.
func (d *Drivers) Fetcher(driver string, req Request) FetchFunc {
	return func(ctx context.Context) (Value, error) { return d.Fetch(ctx, driver, req) }
}

// Refresher polls a secret's source every Interval and hands a value to
// OnChange only when it differs from the last one seen. It remembers a
// keyed hash of that value, never the value: the key is random and never
// leaves the Refresher, so the hash is no oracle for guessing the secret.
//
// A failing poll changes nothing: it is counted and reported to OnError,
// and the last value stays the one to compare with.
type Refresher struct {
	// Fetch gets the value; see Drivers.Fetcher.
	Fetch FetchFunc
	// Interval is the time between polls (--refresh).
	Interval time.Duration
	// Ticks, when set, replaces the ticker of Interval: tests drive polls with it.
	Ticks <-chan time.Time
	// OnChange receives a value that differs from the last one. Its Data is
	// wiped when OnChange returns: copy (encrypt) what must be kept. An
	// error counts as a failed poll, and the value is offered again next time.
	OnChange func(ctx context.Context, v Value) error
	// OnError receives each failed poll's error and how many polls in a row
	// have failed; nil ignores them (Failures still counts).
	OnError func(err error, consecutive int)

	failures atomic.Uint64

	mu          sync.Mutex
	key         []byte
	sum         []byte
	consecutive int
}

// ErrDoNotReuse is a refresh of a source whose values are each for one
// container only: there is no one value to roll out.
var ErrDoNotReuse = errors.New("the source marks its values DoNotReuse")

// Seed sets the value the first poll compares with: the secret's current
// version, so a restart does not roll out a value that did not change.
// The caller keeps ownership of data (and wipes it).
func (r *Refresher) Seed(data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sum = r.hash(data)
}

// Failures is how many polls have failed since the Refresher was made.
func (r *Refresher) Failures() uint64 { return r.failures.Load() }

// Run polls until ctx is done and returns ctx's error.
func (r *Refresher) Run(ctx context.Context) error {
	ticks := r.Ticks
	if ticks == nil {
		if r.Interval <= 0 {
			return fmt.Errorf("refresh interval %s: must be positive", r.Interval)
		}
		t := time.NewTicker(r.Interval)
		defer t.Stop()
		ticks = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticks:
			_, _ = r.Poll(ctx)
		}
	}
}

// Poll fetches once; changed says OnChange took a new value. Polls are
// serialized, so Run and a caller's own Poll never race.
func (r *Refresher) Poll(ctx context.Context) (changed bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, err := r.Fetch(ctx)
	if err == nil {
		defer v.Wipe()
		err = CheckValue(v.Data)
	}
	if err == nil && v.DoNotReuse {
		err = fmt.Errorf("%w: each container gets its own, so it cannot be refreshed: drop --refresh", ErrDoNotReuse)
	}
	if err != nil {
		return false, r.failed(err)
	}
	sum := r.hash(v.Data)
	if r.sum != nil && hmac.Equal(sum, r.sum) {
		r.consecutive = 0
		return false, nil
	}
	if err := r.OnChange(ctx, v); err != nil {
		return false, r.failed(err)
	}
	r.sum = sum
	r.consecutive = 0
	return true, nil
}

func (r *Refresher) failed(err error) error {
	r.failures.Add(1)
	r.consecutive++
	if r.OnError != nil {
		r.OnError(err, r.consecutive)
	}
	return err
}

// hash is HMAC-SHA-256 under a key made on first use; r.mu is held.
func (r *Refresher) hash(data []byte) []byte {
	if r.key == nil {
		r.key = make([]byte, 32)
		if _, err := rand.Read(r.key); err != nil {
			panic("crypto/rand failed: " + err.Error()) // cannot happen on Linux
		}
	}
	m := hmac.New(sha256.New, r.key)
	m.Write(data)
	return m.Sum(nil)
}
