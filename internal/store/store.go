// Package store is secretd's encrypted, versioned secret store. It knows
// nothing about Docker or mounts: it validates, encrypts, keeps versions and
// answers lookups, over any Backend.
package store

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/secretd/secretd/internal/store/envelope"
)

// DefaultKeep is how many versions of a secret are kept for pinned users.
const DefaultKeep = 5

// Config says how the store's KEK is protected.
type Config struct {
	// KeyFile holds the root key when Autolock is off; created on first use.
	KeyFile string
	// Autolock keeps the root key out of the host: the store starts locked
	// and opens only with the unlock key.
	Autolock bool
	// HighWaterFile keeps the highest current version this host has seen
	// of each secret, so a rolled-back record is refused; it belongs in the
	// host's data root, never in a shared store. Empty keeps the marks in
	// memory only.
	HighWaterFile string
	// OnRollback, when set, hears of every rollback refused.
	OnRollback func(RollbackEvent)
}

// Store is an encrypted secret store. It is safe for concurrent use.
type Store struct {
	b    Backend
	mode string

	// mu guards the key state. Writers that seal with the KEK hold it for
	// reading across seal and commit, so a KEK rotation never races a write
	// sealed under the old key.
	mu        sync.RWMutex
	kek       *envelope.Key
	macKey    *envelope.Key // derived from kek: authenticates records
	unlockKey []byte
	// macOn says every record carries a MAC: a record without one is
	// refused. False only for a store from before record MACs, until
	// it is migrated at open or unlock.
	macOn bool
	// epoch is the unlock-key epoch of the key record this store's keys
	// came from (see kekRecord.Epoch).
	epoch int
	// gen is the generation of kek. keyFile is read again when another
	// host sharing the backend rotates the KEK (see shared.go).
	gen     int
	keyFile string

	now func() time.Time

	hw         *highWater
	onRollback func(RollbackEvent)

	watchMu  sync.Mutex
	watchers []func(Secret)

	list *listCache
}

// OnUpdate registers fn to run after every committed new version, in the
// updating goroutine: a rotation is pushed before Update returns.
func (s *Store) OnUpdate(fn func(Secret)) {
	s.watchMu.Lock()
	s.watchers = append(s.watchers, fn)
	s.watchMu.Unlock()
}

func (s *Store) notify(sec Secret) {
	s.watchMu.Lock()
	ws := slices.Clone(s.watchers)
	s.watchMu.Unlock()
	for _, fn := range ws {
		fn(sec)
	}
}

// Open opens the store in b. A new store is initialised: with Autolock, the
// returned unlockKey must be shown to the operator once and is never stored.
// An existing autolocked store opens locked.
func Open(b Backend, cfg Config) (s *Store, unlockKey string, err error) {
	hw, err := loadHighWater(cfg.HighWaterFile)
	if err != nil {
		return nil, "", err
	}
	s = &Store{b: b, keyFile: cfg.KeyFile, now: func() time.Time { return time.Now().UTC() }, list: newListCache(), hw: hw, onRollback: cfg.OnRollback}
	var rec *kekRecord
	if err := b.View(func(tx Tx) error {
		rec, err = getKEKRecord(tx)
		return err
	}); err != nil {
		return nil, "", err
	}
	if rec == nil {
		unlockKey, err = s.initialise(cfg)
		if errors.Is(err, errInitRaced) {
			// Another host sharing the backend created the store first.
			return Open(b, cfg)
		}
		return s, unlockKey, err
	}
	s.mode = rec.Mode
	switch {
	case rec.Mode == modeAutolock && !cfg.Autolock:
		return nil, "", fmt.Errorf("the store was created with --autolock: start the daemon with --autolock")
	case rec.Mode == modeKeyFile && cfg.Autolock:
		return nil, "", fmt.Errorf("the store was created without --autolock: it is protected by a key file, start the daemon without --autolock")
	case rec.Mode == modeAutolock:
		return s, "", nil // locked until Unlock
	case rec.Mode != modeKeyFile:
		return nil, "", fmt.Errorf("%w: unknown key mode %q", ErrCorrupt, rec.Mode)
	}
	root, err := readKeyFile(cfg.KeyFile)
	if err != nil {
		return nil, "", err
	}
	defer clear(root)
	kek, legacy, err := rec.unwrap(root)
	if err != nil {
		return nil, "", fmt.Errorf("wrong key file %s: it does not open this store", cfg.KeyFile)
	}
	if err := s.setKEK(kek); err != nil {
		return nil, "", err
	}
	s.gen, s.epoch, s.macOn = rec.Generation, rec.Epoch, !legacy
	if legacy {
		if err := s.migrateMACs(root); err != nil {
			s.dropKEK()
			return nil, "", err
		}
	}
	return s, "", nil
}

func (s *Store) initialise(cfg Config) (string, error) {
	kek, err := envelope.NewKey()
	if err != nil {
		return "", err
	}
	var root []byte
	var shown string
	if cfg.Autolock {
		s.mode = modeAutolock
		if root, err = newUnlockKey(); err != nil {
			return "", err
		}
		shown = formatUnlockKey(root)
		s.unlockKey = root
	} else {
		s.mode = modeKeyFile
		root, err = readKeyFile(cfg.KeyFile)
		if errors.Is(err, os.ErrNotExist) {
			root, err = createKeyFile(cfg.KeyFile)
		}
		if err != nil {
			return "", err
		}
		defer clear(root)
	}
	rec, err := wrapKEK(root, s.mode, 1, kek)
	if err != nil {
		return "", err
	}
	if err := s.b.Update(func(tx Tx) error {
		if other, err := getKEKRecord(tx); err != nil {
			return err
		} else if other != nil {
			return errInitRaced
		}
		return putKEKRecord(tx, rec)
	}); err != nil {
		return "", err
	}
	if err := s.setKEK(kek); err != nil {
		return "", err
	}
	s.gen, s.macOn = 1, true
	return shown, nil
}

// errInitRaced reports that a key record appeared while this store was
// being initialised: two hosts started on one new shared store at once.
var errInitRaced = errors.New("the store was initialised by another host meanwhile")

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
	kek, legacy, err := rec.unwrap(raw)
	if err != nil {
		clear(raw)
		return Errorf(ErrBadKey, "invalid unlock key: it does not open this store")
	}
	if err := s.setKEK(kek); err != nil {
		clear(raw)
		return err
	}
	s.unlockKey, s.gen, s.epoch, s.macOn = raw, rec.Generation, rec.Epoch, !legacy
	if legacy {
		if err := s.migrateMACs(raw); err != nil {
			s.dropKEK()
			clear(s.unlockKey)
			s.unlockKey = nil
			return err
		}
	}
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
	err = s.b.Update(func(tx Tx) error {
		old, err := getKEKRecord(tx)
		if err != nil {
			return err
		}
		if err := s.sameKEK(old); err != nil {
			return err
		}
		if err := s.rootOpens(old, s.unlockKey); err != nil {
			return err
		}
		rec, err := wrapKEK(raw, modeAutolock, old.Generation, s.kek)
		if err != nil {
			return err
		}
		rec.Epoch = old.Epoch + 1
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
	err = s.b.Update(func(tx Tx) error {
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
			if err := s.checkRecord(&r); err != nil {
				return err
			}
			recs = append(recs, r)
			return nil
		}); err != nil {
			return err
		}
		for _, r := range recs {
			for i, v := range r.Versions {
				env, err := envelope.Rewrap(s.kek, next, v.Envelope, aad(r.ID, r.Name, v.Version))
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
			if err := putRecord(tx, &r, nextMAC); err != nil {
				return err
			}
		}
		generation = old.Generation + 1
		rec, err := wrapKEK(root, s.mode, generation, next)
		if err != nil {
			return err
		}
		rec.Epoch = old.Epoch
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

// Close wipes the keys and closes the backend.
func (s *Store) Close() error {
	herr := s.hw.close()
	s.mu.Lock()
	s.dropKEK()
	clear(s.unlockKey)
	s.unlockKey = nil
	s.mu.Unlock()
	return errors.Join(herr, s.b.Close())
}

// Spec is what a new secret is made of.
type Spec struct {
	Name   string
	Labels map[string]string
	// Data is version 1; it may be empty only for a secret with a Source.
	Data []byte
	// Source makes a driver secret.
	Source *SourceSpec
}

// SourceSpec is a new driver secret's source. Options are sealed like data.
type SourceSpec struct {
	Driver  string
	Options map[string]string
	Cache   bool
	Refresh time.Duration
	// Stored says the value was given at create and is put into the
	// source by the caller (the shell driver's store command); the store
	// keeps no copy of it.
	Stored bool
	// CommandsBy names the host whose root named the commands in Options
	// (the shell driver's lookup, store...); empty when Options name none.
	// The record's MAC covers it, so only a holder of the KEK can set it.
	CommandsBy string
}

// create is Create with the KEK this store holds now.
func (s *Store) create(spec Spec) (Secret, error) {
	if err := ValidateName(spec.Name); err != nil {
		return Secret{}, err
	}
	if err := ValidateLabels(spec.Labels); err != nil {
		return Secret{}, err
	}
	if spec.Source != nil && len(spec.Data) > 0 {
		return Secret{}, Errorf(ErrInvalid, "a driver secret keeps no data in the store")
	}
	if spec.Source == nil {
		if err := ValidateData(spec.Data); err != nil {
			return Secret{}, err
		}
	}
	if spec.Source != nil && spec.Source.Driver == "" {
		return Secret{}, Errorf(ErrInvalid, "a driver secret needs a driver name")
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.kek == nil {
		return Secret{}, ErrLocked
	}
	id, err := newID()
	if err != nil {
		return Secret{}, err
	}
	now := s.now()
	r := record{ID: id, Name: spec.Name, Labels: spec.Labels, CreatedAt: now, UpdatedAt: now}
	if len(spec.Data) > 0 {
		env, err := envelope.SealEnvelope(s.kek, spec.Data, aad(id, spec.Name, 1))
		if err != nil {
			return Secret{}, err
		}
		r.Versions = []versionRecord{{Version: 1, CreatedAt: now, Envelope: env}}
	}
	if src := spec.Source; src != nil {
		r.Source = &sourceRecord{Driver: src.Driver, Cache: src.Cache, Refresh: src.Refresh, Stored: src.Stored, CommandsBy: src.CommandsBy}
		if len(src.Options) > 0 {
			r.Source.Keys = sortedKeys(src.Options)
			plain, err := json.Marshal(src.Options)
			if err != nil {
				return Secret{}, err
			}
			env, err := envelope.SealEnvelope(s.kek, plain, optionsAAD(id, spec.Name))
			clear(plain)
			if err != nil {
				return Secret{}, err
			}
			r.Source.Options = &env
		}
	}
	err = s.b.Update(func(tx Tx) error {
		if err := s.kekCurrent(tx); err != nil {
			return err
		}
		if v, err := tx.Get("names", spec.Name); err != nil {
			return err
		} else if v != nil {
			return Errorf(ErrExists, "secret %s already exists", spec.Name)
		}
		if r.Index, err = nextIndex(tx); err != nil {
			return err
		}
		if err := tx.Put("names", spec.Name, []byte(id)); err != nil {
			return err
		}
		return putRecord(tx, &r, s.macKey)
	})
	if err != nil {
		return Secret{}, err
	}
	return r.secret(), nil
}

// sortedKeys lists m's keys in order.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// SourceOptions decrypts a driver secret's options, for the driver that
// fetches its value. They may hold credentials: never log them.
func (s *Store) SourceOptions(ref string) (map[string]string, Secret, error) {
	defer s.hw.flush()
	return retryKEKOpts(s, ref)
}

func retryKEKOpts(s *Store, ref string) (map[string]string, Secret, error) {
	type out struct {
		opts map[string]string
		sec  Secret
	}
	o, err := retryKEK(s, func() (out, error) {
		opts, sec, err := s.sourceOptions(ref)
		return out{opts, sec}, err
	})
	return o.opts, o.sec, err
}

func (s *Store) sourceOptions(ref string) (map[string]string, Secret, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.kek == nil {
		return nil, Secret{}, ErrLocked
	}
	var r *record
	if err := s.b.View(func(tx Tx) (err error) {
		r, err = s.resolve(tx, ref)
		return err
	}); err != nil {
		return nil, Secret{}, err
	}
	if r.Source == nil {
		return nil, Secret{}, Errorf(ErrInvalid, "secret '%s' has no driver", r.Name)
	}
	opts := map[string]string{}
	if r.Source.Options != nil {
		plain, err := envelope.OpenEnvelope(s.kek, *r.Source.Options, optionsAAD(r.ID, r.Name))
		if err != nil {
			return nil, Secret{}, Errorf(ErrCorrupt, "the driver options of secret '%s' do not decrypt: the store record was altered or moved", r.Name)
		}
		err = json.Unmarshal(plain, &opts)
		clear(plain)
		if err != nil {
			return nil, Secret{}, Errorf(ErrCorrupt, "the driver options of secret '%s' are not readable", r.Name)
		}
	}
	return opts, r.secret(), nil
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
	sec, err = retryKEK(s, func() (Secret, error) { return s.update(ref, index, data, 1, nil) })
	s.hw.flush()
	return sec, err
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
	sec, err := retryKEK(s, func() (Secret, error) { return s.update(ref, index, data, keep, pinned) })
	s.hw.flush()
	if err != nil {
		return Secret{}, err
	}
	// Outside the key lock: watchers decrypt, and a KEK rotation waiting
	// for the lock would deadlock a second read lock.
	s.notify(sec)
	return sec, nil
}

func (s *Store) update(ref string, index uint64, data []byte, keep int, pinned func(Secret) ([]int, error)) (Secret, error) {
	if err := ValidateData(data); err != nil {
		return Secret{}, err
	}
	if keep < 1 {
		keep = DefaultKeep
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.kek == nil {
		return Secret{}, ErrLocked
	}
	var out Secret
	err := s.b.Update(func(tx Tx) error {
		if err := s.kekCurrent(tx); err != nil {
			return err
		}
		r, err := s.resolve(tx, ref)
		if err != nil {
			return err
		}
		if index != 0 && r.Index != index {
			return Errorf(ErrExists, "update out of sequence: secret %s is at index %d, not %d", r.Name, r.Index, index)
		}
		next := r.current() + 1
		env, err := envelope.SealEnvelope(s.kek, data, aad(r.ID, r.Name, next))
		if err != nil {
			return err
		}
		now := s.now()
		r.Versions = append(r.Versions, versionRecord{Version: next, CreatedAt: now, Envelope: env})
		if len(r.Versions) > keep {
			var hold []int
			if pinned != nil {
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
		}
		r.UpdatedAt = now
		if r.Index, err = nextIndex(tx); err != nil {
			return err
		}
		out = r.secret()
		// This host has seen the version it wrote: a store rolled back
		// under it is refused from now on.
		if err := s.hw.check(r, true, s.onRollback); err != nil {
			return err
		}
		return putRecord(tx, r, s.macKey)
	})
	return out, err
}

// RemoveVersion deletes one kept version that is not the current one.
// guard runs inside the write transaction, as for Remove.
func (s *Store) RemoveVersion(ref string, version int, guard func(Secret) error) (Secret, error) {
	defer s.hw.flush()
	return retryKEK(s, func() (Secret, error) { return s.removeVersion(ref, version, guard) })
}

func (s *Store) removeVersion(ref string, version int, guard func(Secret) error) (Secret, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.kek == nil {
		return Secret{}, ErrLocked // the record's new MAC needs the KEK
	}
	var out Secret
	err := s.b.Update(func(tx Tx) error {
		if err := s.kekCurrent(tx); err != nil {
			return err
		}
		r, err := s.resolve(tx, ref)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(r.Versions, func(v versionRecord) bool { return v.Version == version })
		switch {
		case i < 0:
			return Errorf(ErrNotFound, "secret '%s' has no version %d (kept: %s)", r.Name, version, keptVersions(r))
		case i == len(r.Versions)-1:
			return Errorf(ErrInvalid, "version %d is the current version of secret '%s': update the secret first, or remove the whole secret", version, r.Name)
		}
		if guard != nil {
			if err := guard(r.secret()); err != nil {
				return err
			}
		}
		r.Versions = slices.Delete(r.Versions, i, i+1)
		if r.Index, err = nextIndex(tx); err != nil {
			return err
		}
		out = r.secret()
		return putRecord(tx, r, s.macKey)
	})
	return out, err
}

// Get returns a secret's metadata by ID, name or unique ID prefix.
func (s *Store) Get(ref string) (Secret, error) {
	defer s.hw.flush()
	return retryStale(s, func() (Secret, error) { return s.get(ref) })
}

func (s *Store) get(ref string) (Secret, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out Secret
	err := s.b.View(func(tx Tx) error {
		r, err := s.resolve(tx, ref)
		if err == nil {
			out = r.secret()
		}
		return err
	})
	return out, err
}

// Filter selects secrets in List; empty fields match everything. Within a
// field any value may match; across fields all must, as in the Docker API.
type Filter struct {
	Names        []string // exact names (the API's "names" filter)
	NamePrefixes []string // the API's "name" filter, a prefix as in Swarm
	IDPrefixes   []string
	Labels       []string // "key" or "key=value"
}

// All reports whether f selects every secret.
func (f Filter) All() bool {
	return len(f.Names)+len(f.NamePrefixes)+len(f.IDPrefixes)+len(f.Labels) == 0
}

// List returns the secrets that match f, sorted by name.
func (s *Store) List(f Filter) ([]Secret, error) {
	defer s.hw.flush()
	return retryStale(s, func() ([]Secret, error) { return s.listSecrets(f) })
}

func (s *Store) listSecrets(f Filter) ([]Secret, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Secret
	seen := map[string]listEntry{}
	err := s.b.View(func(tx Tx) error {
		return tx.ForEach("secrets", func(k string, v []byte) error {
			r, err := s.list.lookup(k, v, seen, s.macKey, s.checkListed)
			if err != nil {
				return err
			}
			if r.ID != k {
				return fmt.Errorf("%w: secret %s: record does not match its key", ErrCorrupt, k)
			}
			if f.match(r) {
				out = append(out, secretCopy(r))
			}
			return nil
		})
	})
	if err == nil {
		s.list.replace(seen)
	}
	slices.SortFunc(out, func(a, b Secret) int { return strings.Compare(a.Name, b.Name) })
	return out, err
}

func (f Filter) match(r *record) bool {
	if len(f.Names) > 0 && !slices.Contains(f.Names, r.Name) {
		return false
	}
	if len(f.NamePrefixes) > 0 && !slices.ContainsFunc(f.NamePrefixes, func(n string) bool { return strings.HasPrefix(r.Name, n) }) {
		return false
	}
	if len(f.IDPrefixes) > 0 && !slices.ContainsFunc(f.IDPrefixes, func(p string) bool { return strings.HasPrefix(r.ID, p) }) {
		return false
	}
	for _, l := range f.Labels {
		k, v, hasValue := strings.Cut(l, "=")
		got, ok := r.Labels[k]
		if !ok || (hasValue && got != v) {
			return false
		}
	}
	return true
}

// Remove deletes a secret and all its versions. guard runs inside the write
// transaction, so a secret cannot be taken into use between check and delete
// by anything that also checks the store in a transaction.
func (s *Store) Remove(ref string, guard func(Secret) error) (Secret, error) {
	out, err := retryStale(s, func() (Secret, error) { return s.remove(ref, guard) })
	if err == nil {
		s.hw.forget(out.ID)
	}
	return out, err
}

func (s *Store) remove(ref string, guard func(Secret) error) (Secret, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out Secret
	err := s.b.Update(func(tx Tx) error {
		r, err := s.resolve(tx, ref)
		if err != nil {
			return err
		}
		out = r.secret()
		if guard != nil {
			if err := guard(out); err != nil {
				return err
			}
		}
		if err := tx.Delete("names", r.Name); err != nil {
			return err
		}
		return tx.Delete("secrets", r.ID)
	})
	return out, err
}

// reveal is Reveal with the KEK this store holds now.
func (s *Store) reveal(ref string, version int) ([]byte, Secret, error) {
	return s.revealWith(func(tx Tx) (*record, error) { return s.resolve(tx, ref) }, version)
}

// revealWith decrypts a version of the record find returns.
func (s *Store) revealWith(find func(Tx) (*record, error), version int) ([]byte, Secret, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.kek == nil {
		return nil, Secret{}, ErrLocked
	}
	var r *record
	if err := s.b.View(func(tx Tx) (err error) {
		r, err = find(tx)
		return err
	}); err != nil {
		return nil, Secret{}, err
	}
	if len(r.Versions) == 0 {
		// The secret comes back with the error: the caller asks its source.
		return nil, r.secret(), Errorf(ErrNotFound, "secret '%s' has no stored value: secret driver %q gives its value when a container mounts it", r.Name, r.Source.Driver)
	}
	v := r.Versions[len(r.Versions)-1]
	if version != 0 {
		i := slices.IndexFunc(r.Versions, func(x versionRecord) bool { return x.Version == version })
		if i < 0 {
			return nil, Secret{}, Errorf(ErrNotFound, "secret '%s' has no version %d (kept: %s)", r.Name, version, keptVersions(r))
		}
		v = r.Versions[i]
	}
	data, err := envelope.OpenEnvelope(s.kek, v.Envelope, aad(r.ID, r.Name, v.Version))
	if err != nil {
		return nil, Secret{}, Errorf(ErrCorrupt, "secret '%s' version %d does not decrypt: the store record was altered or moved", r.Name, v.Version)
	}
	return data, r.secret(), nil
}

// RevealName is Reveal for a secret named exactly name: declarations name
// secrets, and an ID or ID prefix there would escape the in-use checks,
// which match by name.
func (s *Store) RevealName(name string, version int) ([]byte, Secret, error) {
	find := func(tx Tx) (*record, error) {
		r, err := s.byName(tx, name)
		if err == nil && r == nil {
			err = Errorf(ErrNotFound, "secret '%s' not found", name)
		}
		return r, err
	}
	defer s.hw.flush()
	gen := s.generation()
	data, sec, err := s.revealWith(find, version)
	if errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrRollback) {
		if moved, _ := s.reloadKEK(); moved || s.generation() != gen {
			return s.revealWith(find, version)
		}
	}
	return data, sec, err
}

// Verify decrypts every version of every secret and reports the ones that fail.
func (s *Store) Verify() error {
	secrets, err := s.List(Filter{})
	if err != nil {
		return err
	}
	var errs []error
	for _, sec := range secrets {
		for _, v := range sec.Versions {
			data, _, err := s.Reveal(sec.ID, v.Version)
			clear(data)
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func keptVersions(r *record) string {
	var vs []string
	for _, v := range r.Versions {
		vs = append(vs, strconv.Itoa(v.Version))
	}
	return strings.Join(vs, ", ")
}

// resolve finds a record the way the Docker Engine resolves a secret
// reference: full ID, then exact name, then unique ID prefix.
func (s *Store) resolve(tx Tx, ref string) (*record, error) {
	if ref == "" {
		return nil, Errorf(ErrInvalid, "secret name or ID must not be empty")
	}
	if r, err := s.getRecord(tx, ref); r != nil || err != nil {
		return r, err
	}
	if r, err := s.byName(tx, ref); r != nil || err != nil {
		return r, err
	}
	var matches []string
	if err := tx.ForEach("secrets", func(k string, _ []byte) error {
		if strings.HasPrefix(k, ref) {
			matches = append(matches, k)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	switch len(matches) {
	case 0:
		return nil, Errorf(ErrNotFound, "secret '%s' not found", ref)
	case 1:
		return s.getRecord(tx, matches[0])
	default:
		return nil, Errorf(ErrInvalid, "secret %s is ambiguous (%d matches found)", ref, len(matches))
	}
}

// byName finds the record named name, or nil. The name index is not
// authenticated on its own: the record it points at must carry the name,
// or a pointer moved in the store would hand out another secret's data.
func (s *Store) byName(tx Tx, name string) (*record, error) {
	id, err := tx.Get("names", name)
	if err != nil || id == nil {
		return nil, err
	}
	r, err := s.getRecord(tx, string(id))
	switch {
	case err != nil:
		return nil, err
	case r == nil:
		return nil, fmt.Errorf("%w: name %s points at missing record %s", ErrCorrupt, name, id)
	case r.Name != name:
		return nil, Errorf(ErrCorrupt, "secret '%s': the store's name index points at secret %s, which is named '%s': the store was altered; refusing it", name, r.ID, r.Name)
	}
	return r, nil
}

// getRecord reads and authenticates the record with this ID, or nil.
func (s *Store) getRecord(tx Tx, id string) (*record, error) {
	v, err := tx.Get("secrets", id)
	if err != nil || v == nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("%w: secret %s: %v", ErrCorrupt, id, err)
	}
	if r.ID != id || !r.valid() {
		return nil, fmt.Errorf("%w: secret %s: record does not match its key", ErrCorrupt, id)
	}
	if err := s.checkRecord(&r); err != nil {
		return nil, err
	}
	return &r, nil
}

// putRecord stores r with its MAC under macKey.
func putRecord(tx Tx, r *record, macKey *envelope.Key) error {
	if macKey == nil {
		return ErrLocked
	}
	r.MAC = recordMAC(macKey, r)
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return tx.Put("secrets", r.ID, v)
}

func nextIndex(tx Tx) (uint64, error) {
	v, err := tx.Get("meta", "index")
	if err != nil {
		return 0, err
	}
	var n uint64
	if v != nil {
		if n, err = strconv.ParseUint(string(v), 10, 64); err != nil {
			return 0, fmt.Errorf("%w: index: %v", ErrCorrupt, err)
		}
	}
	n++
	return n, tx.Put("meta", "index", []byte(strconv.FormatUint(n, 10)))
}
