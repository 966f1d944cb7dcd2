package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/secretd/secretd/internal/store/envelope"
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
		// Anyone who can write the backend could otherwise start rotations
		// (and record their failures) with a record of their own making.
		if !s.authentic(&r) {
			return // Reveal reports it too; a good record later is announced
		}
		sec := r.secret()
		if seen[id] == sec.Current {
			return
		}
		seen[id] = sec.Current
		s.announce(&r)
	}, broke)
	<-done
}

// authentic reports whether r, as the watch delivered it, carries a MAC
// this store verifies, taking up once a KEK another host rotated to, and is
// not older than what this host has seen. It raises no high-water mark: a
// write of this host may still be reading the previous version in its
// transaction, which must then conflict and retry, not find a rollback.
// A locked store cannot tell, so it acts on nothing.
func (s *Store) authentic(r *record) bool {
	check := func() error {
		s.mu.RLock()
		defer s.mu.RUnlock()
		switch {
		case s.macKey == nil:
			return ErrLocked
		case len(r.MAC) == 0:
			return Errorf(ErrCorrupt, "secret %s carries no authentication tag", r.ID)
		case !envelope.VerifyMAC(s.macKey, macMessage(r), r.MAC):
			return Errorf(ErrCorrupt, "secret %s fails authentication", r.ID)
		case !r.valid():
			return Errorf(ErrCorrupt, "secret %s: record holds no version", r.ID)
		}
		return s.hw.check(r, false, nil, strict)
	}
	err := check()
	if errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrRollback) {
		if moved, _ := s.reloadKEK(); moved {
			err = check()
		}
	}
	return err == nil
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
