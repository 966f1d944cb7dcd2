package store

import (
	"errors"
	"fmt"
)

// On a backend several hosts share, one host may rotate the KEK under the
// others. A host still holding the old KEK could then neither open what is
// sealed under the new one nor seal anything the others can open. So every
// write checks, inside its transaction, that the KEK record is still at the
// generation this store holds, and a host that finds it moved takes up the
// new KEK (unwrapped with the same root key) and tries again (see write.go).

// errKEKMoved reports that another host rotated the KEK since this store
// loaded it.
var errKEKMoved = Errorf(ErrExists, "another host rotated the key-encryption key meanwhile: try again")

// sameKEK fails unless rec is the KEK record this store's KEK came from.
func (s *Store) sameKEK(rec *kekRecord) error {
	if rec == nil {
		return fmt.Errorf("%w: the key record is missing", ErrCorrupt)
	}
	if rec.Generation != s.gen {
		return errKEKMoved
	}
	return nil
}

// kekCurrent is sameKEK for the record tx reads; on a shared backend the
// read also makes a concurrent rotation conflict with tx.
func (s *Store) kekCurrent(tx Tx) error {
	rec, err := getKEKRecord(tx)
	if err != nil {
		return err
	}
	return s.sameKEK(rec)
}

// rootOpens fails unless root (the unlock key or key file this host holds)
// opens the key record rec: a key operation must never wrap the KEK with a
// root key another host has already replaced. The caller holds s.mu.
func (s *Store) rootOpens(rec *kekRecord, root []byte) error {
	kek, _, err := rec.unwrap(root)
	if err == nil {
		kek.Wipe()
		return nil
	}
	if s.mode == modeAutolock {
		return Errorf(ErrBadKey, "the unlock key this host holds no longer opens the store: another host rotated it; run 'secretd unlock' with the current unlock key first")
	}
	return Errorf(ErrBadKey, "key file %s does not open the store's current key record: give every host the same key file", s.keyFile)
}

// retryStale runs a read again once after taking up a KEK another host
// rotated to: a record MAC'd under the new KEK fails under the old one.
func retryStale[T any](s *Store, fn func() (T, error)) (T, error) {
	v, err := fn()
	if errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrRollback) {
		if moved, _ := s.reloadKEK(); moved {
			v, err = fn()
		}
	}
	return v, err
}

// retryKEK runs fn again once after taking up a KEK another host rotated to.
func retryKEK[T any](s *Store, fn func() (T, error)) (T, error) {
	v, err := fn()
	if errors.Is(err, errKEKMoved) {
		if _, rerr := s.reloadKEK(); rerr != nil {
			return v, rerr
		}
		v, err = fn()
	}
	return v, err
}

// reloadKEK takes up the KEK the store's key record holds now, if another
// host rotated it; it reports whether the KEK changed.
func (s *Store) reloadKEK() (bool, error) {
	rec, err := s.kekRecord()
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kek == nil || (rec.Generation == s.gen && rec.Epoch == s.epoch) {
		return false, nil
	}
	root := s.unlockKey
	if s.mode != modeAutolock {
		if root, err = readKeyFile(s.keyFile); err != nil {
			return false, err
		}
		defer clear(root)
	}
	kek, format, err := rec.unwrap(root)
	if err == nil {
		if err := s.ks.check(format); err != nil {
			kek.Wipe()
			return false, err
		}
	}
	if err != nil {
		if s.mode == modeAutolock {
			// Another host rotated the unlock key: only the new one opens
			// the store now, so this host locks itself rather than keep
			// wrapping keys with the old one.
			s.dropKEK()
			clear(s.unlockKey)
			s.unlockKey = nil
			return true, Errorf(ErrLocked, "secretd is locked: another host rotated the unlock key; run 'secretd unlock' with the current unlock key")
		}
		return false, fmt.Errorf("another host rotated the key-encryption key and key file %s does not open it: give every host the same key file", s.keyFile)
	}
	if err := s.setKEK(kek); err != nil {
		return false, err
	}
	s.gen, s.epoch = rec.Generation, rec.Epoch
	return true, nil
}

// Create stores a new secret at version 1.
func (s *Store) Create(spec Spec) (Secret, error) {
	return retryKEK(s, func() (Secret, error) { return s.create(spec) })
}

// RotateUnlockKey replaces the unlock key; the old one stops working at once.
func (s *Store) RotateUnlockKey() (string, error) {
	return retryKEK(s, s.rotateUnlockKey)
}

// RotateKEK replaces the KEK and re-wraps every data key in one transaction.
// Readers wait for the commit; nothing is re-encrypted and nothing restarts.
// Other hosts sharing the backend take up the new KEK when they see it.
func (s *Store) RotateKEK(keyFile string) (int, error) {
	return retryKEK(s, func() (int, error) { return s.rotateKEK(keyFile) })
}

// Reveal decrypts a version of a secret (0 for the current one). The caller
// owns the returned bytes and should clear them after use.
func (s *Store) Reveal(ref string, version int) ([]byte, Secret, error) {
	defer s.hw.flush()
	gen := s.generation()
	data, sec, err := s.reveal(ref, version)
	if errors.Is(err, ErrCorrupt) {
		// Sealed under a KEK another host has rotated to since? The watch
		// may have taken it up meanwhile.
		if moved, _ := s.reloadKEK(); moved || s.generation() != gen {
			return s.reveal(ref, version)
		}
	}
	return data, sec, err
}

func (s *Store) generation() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.gen
}
