// Package store is secretd's encrypted, versioned secret store. It knows
// nothing about Docker or mounts: it validates, encrypts, keeps versions and
// answers lookups, over any Backend.
//
// store.go holds the Store and its life (open, close); keyring.go the key
// state (lock, unlock, key rotations); secrets.go the creation and the
// reads of secrets; write.go the one path every change of a secret takes;
// record.go the stored form of a secret.
package store

import (
	"errors"
	"fmt"
	"os"
	"slices"
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
	// KeyStateFile keeps the newest key record format this host has
	// opened the store in, so an older key record written back is refused
	// (keystate.go); it belongs in the host's data root. Empty keeps it in
	// memory only.
	KeyStateFile string
}

// Store is an encrypted store of secrets and configs, seen through one
// kind (kind.go): Open returns the secrets' view. It is safe for concurrent
// use.
type Store struct {
	*core
	kind Kind
}

// core is what every view of one store shares: the backend, the keys,
// the high-water marks and the hooks.
type core struct {
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
	ks         *keyState

	watchMu  sync.Mutex
	watchers []func(Secret)
	ann      announcing

	list *listCache
}

// OnUpdate registers fn to run after every committed new version of a
// secret or a config (its Kind says which), in the updating goroutine: a
// rotation is pushed before Update returns.
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
	ks, err := loadKeyState(cfg.KeyStateFile)
	if err != nil {
		return nil, "", err
	}
	s = &Store{kind: KindSecret, core: &core{b: b, keyFile: cfg.KeyFile, now: func() time.Time { return time.Now().UTC() }, list: newListCache(), hw: hw, onRollback: cfg.OnRollback, ks: ks}}
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
	if err := s.takeUp(rec, root); err != nil {
		if errors.Is(err, ErrBadKey) {
			return nil, "", fmt.Errorf("wrong key file %s: it does not open this store (if it is the right one, the store's key record was altered: restore it from a backup)", cfg.KeyFile)
		}
		return nil, "", err
	}
	return s, "", nil
}

// takeUp opens the key record rec with root and installs its KEK. A
// record of a format older than this host has seen is refused (keystate.go);
// an older one this host may still take up is moved to the current format:
// record MACs first (migrateMACs), then a key record that binds its mode,
// generation and epoch. A root that does not open rec is ErrBadKey. The
// caller holds s.mu for writing, or owns s alone.
func (s *Store) takeUp(rec *kekRecord, root []byte) error {
	kek, format, err := rec.unwrap(root)
	if err != nil {
		return ErrBadKey
	}
	if err := s.ks.check(format); err != nil {
		kek.Wipe()
		return err
	}
	if err := s.setKEK(kek); err != nil {
		return err
	}
	s.gen, s.epoch, s.macOn = rec.Generation, rec.Epoch, format >= kekFormatV2
	switch format {
	case kekFormatV1:
		err = s.migrateMACs(root)
	case kekFormatV2:
		err = s.bindKeyRecord(root)
	}
	if err == nil {
		err = s.ks.raise(kekFormat)
	}
	if err != nil {
		s.dropKEK()
	}
	return err
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
	rec, err := wrapKEK(root, s.mode, 1, 0, kek)
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
	if err := s.ks.raise(kekFormat); err != nil {
		return "", err
	}
	return shown, nil
}

// errInitRaced reports that a key record appeared while this store was
// being initialised: two hosts started on one new shared store at once.
var errInitRaced = errors.New("the store was initialised by another host meanwhile")

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
