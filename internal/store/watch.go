package store

import (
	"context"
	"encoding/json"
	"time"
)

// Shared reports whether other hosts write to this store's backend too.
func (s *Store) Shared() bool {
	_, ok := s.b.(Watcher)
	return ok
}

// Watch runs the OnUpdate hooks for every new current version of a secret,
// whoever wrote it, until ctx ends: on a shared backend a rotation made on
// another host reaches this host's containers. A broken watch is reopened
// with backoff; broke hears why. It returns at once on a backend no other
// host writes to, where Update already runs the hooks.
//
// A secret's hooks run once per current version it is seen at: the update
// that this host made itself is announced by the watch again, and a
// reopened watch replays every secret, but Rotate skips mounts already at
// that version, so a repeat costs a lookup, never a second rotation.
func (s *Store) Watch(ctx context.Context, broke func(err error, retry time.Duration)) {
	w, ok := s.b.(Watcher)
	if !ok {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// A KEK rotated by another host is taken up before this host
		// needs it (Reveal and writes would also find out on their own).
		follow(ctx, w, "meta", func(key string, v []byte) {
			if key == "kek" && v != nil {
				s.reloadKEK()
			}
		}, broke)
	}()
	seen := map[string]int{} // secret ID -> current version announced
	follow(ctx, w, "secrets", func(id string, v []byte) {
		if v == nil {
			delete(seen, id)
			return
		}
		var r record
		if json.Unmarshal(v, &r) != nil || r.ID != id || len(r.Versions) == 0 {
			return // Reveal reports such a record to whoever needs it
		}
		sec := r.secret()
		if seen[id] == sec.Current {
			return
		}
		seen[id] = sec.Current
		s.notify(sec)
	}, broke)
	<-done
}

// follow watches one bucket until ctx ends, watching again with backoff
// whenever the watch breaks.
func follow(ctx context.Context, w Watcher, bucket string, fn func(string, []byte), broke func(error, time.Duration)) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		start := time.Now()
		err := w.Watch(ctx, bucket, fn)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > 10*time.Second {
			backoff = 100 * time.Millisecond
		}
		if broke != nil {
			broke(err, backoff)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}
