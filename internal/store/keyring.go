package store

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/secretd/secretd/internal/store/envelope"
)

// Locked reports whether the store needs its unlock key.
func (s *Store) Locked() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.kek == nil
}

// Autolock reports whether the store is protected by an unlock key.
func (s *Store) Autolock() bool { return s.mode == modeAutolock }

// Unlock opens an autolocked store with its unlock key.
func (s *Store) Unlock(key string) error {
	if s.mode != modeAutolock {
		return Errorf(ErrInvalid, "secretd is not locked: it was started without --autolock")
	}
	raw, err := parseUnlockKey(key)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kek != nil {
		clear(raw)
		return Errorf(ErrInvalid, "secretd is not locked")
	}
	rec, err := s.kekRecord()
	if err != nil {
		return err
	}
	if err := s.takeUp(rec, raw); err != nil {
		clear(raw)
		if errors.Is(err, ErrBadKey) {
			return Errorf(ErrBadKey, "invalid unlock key: it does not open this store")
		}
		return err
	}
	s.unlockKey = raw
	return nil
}

// Lock forgets the KEK and the unlock key; autolock only.
func (s *Store) Lock() error {
	if s.mode != modeAutolock {
		return Errorf(ErrInvalid, "secretd cannot be locked: it was started without --autolock")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropKEK()
	clear(s.unlockKey)
	s.unlockKey = nil
	return nil
}

// UnlockKey returns the current unlock key, as `docker swarm unlock-key` does.
func (s *Store) UnlockKey() (string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.unlockedAutolock(); err != nil {
		return "", err
	}
	return formatUnlockKey(s.unlockKey), nil
}

// rotateUnlockKey is RotateUnlockKey with the KEK this store holds now.
func (s *Store) rotateUnlockKey() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.unlockedAutolock(); err != nil {
		return "", err
	}
	raw, err := newUnlockKey()
	if err != nil {
		return "", err
	}
	var epoch int
	err = s.keyUpdate(s.unlockKey, func(tx Tx, old *kekRecord) error {
		rec, err := wrapKEK(raw, modeAutolock, old.Generation, old.Epoch+1, s.kek)
		if err != nil {
			return err
		}
		epoch = rec.Epoch
		return putKEKRecord(tx, rec)
	})
	if err != nil {
		clear(raw)
		return "", err
	}
	clear(s.unlockKey)
	s.unlockKey, s.epoch = raw, epoch
	return formatUnlockKey(raw), nil
}

func (s *Store) unlockedAutolock() error {
	if s.mode != modeAutolock {
		return Errorf(ErrInvalid, "secretd was started without --autolock: it has no unlock key")
	}
	if s.kek == nil {
		return ErrLocked
	}
	return nil
}

// rotateKEK is RotateKEK with the KEK this store holds now.
func (s *Store) rotateKEK(keyFile string) (generation int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kek == nil {
		return 0, ErrLocked
	}
	next, err := envelope.NewKey()
	if err != nil {
		return 0, err
	}
	var root []byte
	if s.mode == modeAutolock {
		root = s.unlockKey
	} else {
		if root, err = readKeyFile(keyFile); err != nil {
			return 0, err
		}
		defer clear(root)
	}
	err = s.keyUpdate(root, func(tx Tx, old *kekRecord) error {
		if err := s.rewrapAll(tx, next); err != nil {
			return err
		}
		generation = old.Generation + 1
		rec, err := wrapKEK(root, s.mode, generation, old.Epoch, next)
		if err != nil {
			return err
		}
		return putKEKRecord(tx, rec)
	})
	if err != nil {
		next.Wipe()
		return 0, err
	}
	if err := s.setKEK(next); err != nil {
		return 0, err
	}
	s.gen = generation
	return generation, nil
}

// keyUpdate runs fn in a write transaction over the key record, once it
// checked that the record is the one this store's KEK came from and that
// root (the root key this host holds) opens it. The caller holds s.mu for
// writing.
func (s *Store) keyUpdate(root []byte, fn func(tx Tx, old *kekRecord) error) error {
	return s.b.Update(func(tx Tx) error {
		old, err := getKEKRecord(tx)
		if err != nil {
			return err
		}
		if err := s.sameKEK(old); err != nil {
			return err
		}
		if err := s.rootOpens(old, root); err != nil {
			return err
		}
		return fn(tx, old)
	})
}

// rewrapAll re-wraps every data key (and driver options) of every record
// from the KEK this store holds to next, and MACs the records under next's
// MAC key. The caller holds s.mu for writing.
func (s *Store) rewrapAll(tx Tx, next *envelope.Key) error {
	nextMAC, err := macKeyOf(next)
	if err != nil {
		return err
	}
	defer nextMAC.Wipe()
	var recs []record
	if err := tx.ForEach("secrets", func(k string, v []byte) error {
		var r record
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		// Written back under r.ID below: a record claiming another
		// key's ID would be copied there, as getRecord refuses it.
		if r.ID != k || !r.valid() {
			return fmt.Errorf("%w: secret %s: record does not match its key", ErrCorrupt, k)
		}
		// Checked under the old key before the new one vouches for it.
		if err := s.checkRecord(&r, strict); err != nil {
			return err
		}
		recs = append(recs, r)
		return nil
	}); err != nil {
		return err
	}
	for _, r := range recs {
		if err := s.rewrap(&r, next); err != nil {
			return err
		}
		if err := putRecord(tx, &r, nextMAC); err != nil {
			return err
		}
	}
	return nil
}

// rewrap moves r's envelopes from the KEK this store holds to next.
func (s *Store) rewrap(r *record, next *envelope.Key) error {
	for i, v := range r.Versions {
		env, err := envelope.Rewrap(s.kek, next, v.Envelope, aad(r.Kind, r.ID, r.Name, v.Version))
		if err != nil {
			return fmt.Errorf("%w: secret %s version %d", ErrCorrupt, r.Name, v.Version)
		}
		r.Versions[i].Envelope = env
	}
	if src := r.Source; src != nil && src.Options != nil {
		env, err := envelope.Rewrap(s.kek, next, *src.Options, optionsAAD(r.ID, r.Name))
		if err != nil {
			return fmt.Errorf("%w: secret %s: driver options", ErrCorrupt, r.Name)
		}
		src.Options = &env
	}
	return nil
}

func (s *Store) kekRecord() (*kekRecord, error) {
	var rec *kekRecord
	err := s.b.View(func(tx Tx) (err error) {
		rec, err = getKEKRecord(tx)
		return err
	})
	if err == nil && rec == nil {
		err = fmt.Errorf("%w: the key record is missing", ErrCorrupt)
	}
	return rec, err
}
