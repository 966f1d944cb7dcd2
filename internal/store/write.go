package store

import (
	"crypto/subtle"
	"errors"
	"slices"

	"github.com/secretd/secretd/internal/store/envelope"
)

// Every change of an existing secret goes through write, which does what
// all of them must, in this order:
//
//  1. lock: hold the key lock for reading, so a KEK rotation never races
//     the write, and refuse a write that needs the KEK while locked;
//  2. KEK check: inside the transaction, the key record must still be at
//     the generation this host holds; on a shared store another host may
//     have rotated it, and then the write takes up the new KEK and runs
//     once more (a record MAC'd under a KEK this host does not hold yet
//     also reads as corrupt, and is retried the same way);
//  3. resolve the reference, and check the index when the writer gives one;
//  4. the writer's own change (edit);
//  5. index: the record takes the store's next index;
//  6. put the record under the MAC key, or delete it;
//  7. flush the version high-water marks;
//  8. notify the OnUpdate hooks when a new version was written.
//
// The writers (update, removeVersion, remove, UpdateLabels) are step 4.

// change describes one write of an existing secret.
type change struct {
	ref string
	// index, when not 0, must be the record's index, or the write fails
	// with ErrExists ("update out of sequence").
	index uint64
	// edit is the writer's own change of r, made inside the transaction.
	// seal is the KEK, for a writer that seals data.
	edit func(r *record, seal *envelope.Key) error
	// remove deletes the record instead of putting it back. A removal
	// needs no key: it works on a locked store.
	remove bool
	// notify runs the OnUpdate hooks with the written secret: a new
	// version to push into containers.
	notify bool
}

// write runs c as described above and returns the secret as written (as
// it was, for a removal).
func (s *Store) write(c change) (Secret, error) {
	out, written, err := s.writeOnce(c)
	if moved := errors.Is(err, errKEKMoved); moved || errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrRollback) {
		reloaded, rerr := s.reloadKEK()
		switch {
		case moved && rerr != nil:
			err = rerr
		case moved || reloaded:
			out, written, err = s.writeOnce(c)
		}
	}
	s.hw.flush()
	if err != nil {
		return Secret{}, err
	}
	if c.remove {
		s.hw.forget(out.ID)
	}
	if c.notify {
		// Outside the key lock: watchers decrypt, and a KEK rotation
		// waiting for the lock would deadlock a second read lock.
		s.announce(written)
	}
	return out, nil
}

// writeOnce is one attempt of write: steps 1 to 6. It returns the record
// as written (nil for a removal), for the hooks.
func (s *Store) writeOnce(c change) (Secret, *record, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.kek == nil && !c.remove {
		// The record's new MAC needs the KEK, as does any sealing.
		return Secret{}, nil, ErrLocked
	}
	var out Secret
	var written *record
	err := s.updateTx(func(tx Tx) error {
		written = nil
		if s.kek != nil {
			if err := s.kekCurrent(tx); err != nil {
				return err
			}
		}
		r, err := s.resolve(tx, c.ref)
		if err != nil {
			return err
		}
		if c.index != 0 && r.Index != c.index {
			return Errorf(ErrExists, "update out of sequence: %s %s is at index %d, not %d", r.kind(), r.Name, r.Index, c.index)
		}
		if err := c.edit(r, s.kek); err != nil {
			return err
		}
		if c.remove {
			out = r.secret()
			if err := tx.Delete("names", s.kind.indexKey(r.Name)); err != nil {
				return err
			}
			return tx.Delete("secrets", r.ID)
		}
		if r.Index, err = nextIndex(tx); err != nil {
			return err
		}
		out = r.secret()
		if err := s.hw.check(r, false, s.onRollback, sinceOf(tx)); err != nil {
			return err
		}
		written = r
		return putRecord(tx, r, s.macKey)
	})
	if err == nil && !c.remove {
		// This host has seen the version it wrote: a store rolled back
		// under it is refused from now on. Raised only once committed: a
		// write the backend refused (too large, disk full) must not make
		// the version still stored look rolled back.
		s.hw.raise(out.ID, out.Current)
	}
	return out, written, err
}

// SaveCache keeps data as a cached driver secret's newest version, unless
// it already is. Unlike Update it rotates nothing: the cache is the value
// served when the source fails, not a new value to push.
func (s *Store) SaveCache(ref string, data []byte) (Secret, error) {
	cur, sec, err := s.Reveal(ref, 0)
	same := err == nil && subtle.ConstantTimeCompare(cur, data) == 1
	clear(cur)
	if same {
		return sec, nil
	}
	index := uint64(0)
	if err == nil {
		index = sec.Index
	}
	return s.update(ref, index, data, 1, nil, false)
}

// Update stores data as the secret's next version and drops versions beyond
// the newest keep (DefaultKeep when keep < 1), except those pinned returns:
// a version a container pins is never dropped under it.
func (s *Store) Update(ref string, data []byte, keep int, pinned func(Secret) ([]int, error)) (Secret, error) {
	return s.UpdateAt(ref, 0, data, keep, pinned)
}

// UpdateAt is Update that fails with ErrExists ("update out of sequence")
// unless the secret is still at index (0 skips the check), compared inside
// the write transaction so two writers holding the same index cannot both
// win.
func (s *Store) UpdateAt(ref string, index uint64, data []byte, keep int, pinned func(Secret) ([]int, error)) (Secret, error) {
	return s.update(ref, index, data, keep, pinned, true)
}

// update seals data as the next version, keeping the newest keep and the
// pinned ones; notify pushes it.
func (s *Store) update(ref string, index uint64, data []byte, keep int, pinned func(Secret) ([]int, error), notify bool) (Secret, error) {
	if err := s.kind.ValidateData(data); err != nil {
		return Secret{}, err
	}
	if keep < 1 {
		keep = DefaultKeep
	}
	return s.write(change{ref: ref, index: index, notify: notify, edit: func(r *record, kek *envelope.Key) error {
		next := r.current() + 1
		env, err := envelope.SealEnvelope(kek, data, aad(r.Kind, r.ID, r.Name, next))
		if err != nil {
			return err
		}
		now := s.now()
		r.Versions = append(r.Versions, versionRecord{Version: next, CreatedAt: now, Envelope: env})
		if err := prune(r, keep, pinned); err != nil {
			return err
		}
		r.UpdatedAt = now
		return nil
	}})
}

// prune drops r's versions beyond the newest keep, except those pinned
// returns.
func prune(r *record, keep int, pinned func(Secret) ([]int, error)) error {
	if len(r.Versions) <= keep {
		return nil
	}
	var hold []int
	if pinned != nil {
		var err error
		if hold, err = pinned(r.secret()); err != nil {
			return err
		}
	}
	cut := len(r.Versions) - keep
	kept := r.Versions[:0:0]
	for i, v := range r.Versions {
		if i >= cut || slices.Contains(hold, v.Version) {
			kept = append(kept, v)
		}
	}
	r.Versions = kept
	return nil
}

// RemoveVersion deletes one kept version that is not the current one.
// guard runs inside the write transaction, as for Remove.
func (s *Store) RemoveVersion(ref string, version int, guard func(Secret) error) (Secret, error) {
	return s.write(change{ref: ref, edit: func(r *record, _ *envelope.Key) error {
		i := slices.IndexFunc(r.Versions, func(v versionRecord) bool { return v.Version == version })
		switch {
		case i < 0:
			return Errorf(ErrNotFound, "%s '%s' has no version %d (kept: %s)", r.kind(), r.Name, version, keptVersions(r))
		case i == len(r.Versions)-1:
			return Errorf(ErrInvalid, "version %d is the current version of %s '%s': update the %s first, or remove the whole %s", version, r.kind(), r.Name, r.kind(), r.kind())
		}
		if err := runGuard(guard, r); err != nil {
			return err
		}
		r.Versions = slices.Delete(r.Versions, i, i+1)
		return nil
	}})
}

// Remove deletes a secret and all its versions. guard runs inside the write
// transaction, so a secret cannot be taken into use between check and delete
// by anything that also checks the store in a transaction.
func (s *Store) Remove(ref string, guard func(Secret) error) (Secret, error) {
	return s.write(change{ref: ref, remove: true, edit: func(r *record, _ *envelope.Key) error {
		return runGuard(guard, r)
	}})
}

// UpdateLabels replaces a secret's labels, as Swarm's secret update does:
// the only change Swarm allows to a secret. It fails with ErrExists unless
// the secret is still at index (0 skips the check); guard runs inside the
// write transaction with the secret as stored, so a caller can refuse a
// body that names another secret. No version is added and nothing is
// pushed to containers: labels are not part of what a container sees.
func (s *Store) UpdateLabels(ref string, index uint64, labels map[string]string, guard func(Secret) error) (Secret, error) {
	if err := ValidateLabels(labels); err != nil {
		return Secret{}, err
	}
	return s.write(change{ref: ref, index: index, edit: func(r *record, _ *envelope.Key) error {
		if err := runGuard(guard, r); err != nil {
			return err
		}
		r.Labels = labels
		r.UpdatedAt = s.now()
		return nil
	}})
}

// runGuard runs a writer's guard, if any, on the record as stored.
func runGuard(guard func(Secret) error, r *record) error {
	if guard == nil {
		return nil
	}
	return guard(r.secret())
}
