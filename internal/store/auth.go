package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/secretd/secretd/internal/atomicfile"
	"github.com/secretd/secretd/internal/store/envelope"
)

// A record's metadata sits in the clear so that `ls` works while locked, and
// its envelopes only bind each version's data to (ID, name, version). So
// that nobody who can write the backend can drop the newest version, change
// the version list or move a name, every record also carries a MAC over its
// metadata, under a key derived from the KEK. A replayed older record
// carries a valid MAC, so each host also remembers the highest current
// version it has seen of each secret (the high-water mark, kept in its own
// data root) and refuses to go below it.

const (
	macPurpose = "secretd record mac v1"
	macDomain  = "secretd/record/v1\x00"
)

// macKeyOf derives the record MAC key from a KEK.
func macKeyOf(kek *envelope.Key) (*envelope.Key, error) {
	raw := kek.Bytes()
	defer clear(raw)
	return envelope.DeriveKey(raw, nil, macPurpose)
}

// macInput is what a record's MAC covers: everything but the envelopes,
// which their own AEAD binds to the ID, name and version.
type macInput struct {
	// Kind and Template are omitted for a plain secret, so records from
	// before configs and templates keep their MAC.
	Kind     string            `json:"kind,omitempty"`
	Template string            `json:"template,omitempty"`
	ID       string            `json:"id"`
	Name     string            `json:"name"`
	Labels   map[string]string `json:"labels"`
	Created  time.Time         `json:"created"`
	Updated  time.Time         `json:"updated"`
	Index    uint64            `json:"index"`
	Current  int               `json:"current"`
	Versions []macVersion      `json:"versions"`
	// Source is omitted for a stored secret, so records from before
	// driver secrets keep their MAC.
	Source *macSource `json:"source,omitempty"`
}

// macSource is what a MAC covers of a driver secret's source; the sealed
// options are bound to the secret by their own AEAD.
type macSource struct {
	Driver  string        `json:"driver"`
	Keys    []string      `json:"keys"`
	Options bool          `json:"options"`
	Cache   bool          `json:"cache"`
	Refresh time.Duration `json:"refresh"`
	// Stored is left out when false, so the tags of records from before
	// it still verify.
	Stored bool `json:"stored,omitempty"`
	// CommandsBy is left out when empty, for the same reason: it says
	// whose root named the commands a host runs for this secret.
	CommandsBy string `json:"commands_by,omitempty"`
}

type macVersion struct {
	Version int       `json:"version"`
	Created time.Time `json:"created"`
}

func recordMAC(key *envelope.Key, r *record) []byte {
	return envelope.MAC(key, macMessage(r))
}

// checkRecord authenticates a record read from the backend and refuses a
// rollback. The caller holds s.mu. Without the KEK (locked) the MAC cannot
// be checked; the high-water mark still is.
func (s *Store) checkRecord(r *record, since uint64) error {
	verified := false
	switch {
	case s.macKey == nil:
	case len(r.MAC) == 0 && s.macOn:
		return Errorf(ErrCorrupt, "%s '%s' (%s) carries no authentication tag: its record was replaced in the store; restore it from a backup", r.kind(), r.Name, r.ID)
	case len(r.MAC) == 0:
		verified = true // a store from before record MACs, migrated at unlock
	case !envelope.VerifyMAC(s.macKey, macMessage(r), r.MAC):
		return Errorf(ErrCorrupt, "%s '%s' (%s) fails authentication: its name, versions or index were altered in the store; restore it from a backup", r.kind(), r.Name, r.ID)
	default:
		verified = true
	}
	if !r.valid() {
		return Errorf(ErrCorrupt, "secret %s: record holds no version", r.ID)
	}
	return s.hw.check(r, verified, s.onRollback, since)
}

// checkListed is checkRecord for List's cache, which checks a record's MAC
// once per MAC key and the high-water mark every time.
func (s *Store) checkListed(r *record, verified bool, since uint64) error {
	if verified {
		return s.hw.check(r, false, s.onRollback, since)
	}
	return s.checkRecord(r, since)
}

// macMessage is recordMAC's input, for verification.
func macMessage(r *record) []byte {
	in := macInput{Kind: r.Kind, Template: r.Template, ID: r.ID, Name: r.Name, Created: r.CreatedAt, Updated: r.UpdatedAt, Index: r.Index}
	if len(r.Labels) > 0 {
		in.Labels = r.Labels // no labels and empty labels read back alike (omitempty)
	}
	for _, v := range r.Versions {
		in.Versions = append(in.Versions, macVersion{Version: v.Version, Created: v.CreatedAt})
	}
	in.Current = r.current()
	if src := r.Source; src != nil {
		in.Source = &macSource{Driver: src.Driver, Keys: src.Keys, Options: src.Options != nil, Cache: src.Cache, Refresh: src.Refresh, Stored: src.Stored, CommandsBy: src.CommandsBy}
	}
	b, err := json.Marshal(in)
	if err != nil {
		panic(err) // plain data: cannot fail
	}
	return append([]byte(macDomain), b...)
}

// strict is the since of a read whose start is unknown: no raise excuses
// an old version there.
const strict = math.MaxUint64

// stampedTx is a transaction with the high-water generation at its start,
// for check's since.
type stampedTx struct {
	Tx
	since uint64
}

// sinceOf is the generation at tx's start, or strict.
func sinceOf(tx Tx) uint64 {
	if st, ok := tx.(stampedTx); ok {
		return st.since
	}
	return strict
}

// unstamped is the backend's own transaction under tx.
func unstamped(tx Tx) Tx {
	if st, ok := tx.(stampedTx); ok {
		return st.Tx
	}
	return tx
}

// view and updateTx run fn in a transaction stamped with the generation
// taken before it began.
func (s *Store) view(fn func(Tx) error) error {
	since := s.hw.generation()
	return s.b.View(func(tx Tx) error { return fn(stampedTx{tx, since}) })
}

func (s *Store) updateTx(fn func(Tx) error) error {
	since := s.hw.generation()
	return s.b.Update(func(tx Tx) error { return fn(stampedTx{tx, since}) })
}

// ErrRollback marks a record older than one this host has already seen: a
// version was removed, or an old copy of the record was put back.
var ErrRollback = fmt.Errorf("%w: rolled back", ErrCorrupt)

// highWater is the highest current version this host has seen of each
// secret, kept in a file of the host's own (not in the shared store, which
// is what it guards against).
type highWater struct {
	path string

	mu    sync.Mutex
	seen  map[string]int
	dirty bool // raised in memory since the last save
	// gen counts raises; raisedAt is the gen of each mark's last raise. A
	// read whose transaction began before a raise may hold the version
	// under it: raisedAt tells that from a rollback (see since). gen is
	// written under mu but read without it: every read of the store takes
	// it once, on the Mount path.
	gen      atomic.Uint64
	raisedAt map[string]uint64

	// saveMu orders the file writes; kick wakes the saver, which writes
	// behind the reads that raised marks (a Mount must not wait on a
	// sync of the whole file); done closes when it has stopped.
	saveMu sync.Mutex
	start  sync.Once
	kick   chan struct{}
	stop   chan struct{}
	done   chan struct{}
}

func loadHighWater(path string) (*highWater, error) {
	h := &highWater{path: path, seen: map[string]int{}, raisedAt: map[string]uint64{}}
	if path == "" {
		return h, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return h, nil
	}
	if err != nil {
		return nil, fmt.Errorf("version high-water marks: %w", err)
	}
	if err := json.Unmarshal(b, &h.seen); err != nil {
		return nil, fmt.Errorf("version high-water marks %s are not valid JSON (%v): remove the file to start again from what the store holds", path, err)
	}
	return h, nil
}

// check refuses r if its current version is below what this host saw, and
// raises the mark when r is authenticated and newer. since is the
// generation when r's transaction began: a mark this host raised after
// that (its own write, or a concurrent read of the newer record) does not
// make r a rollback, as r was current when its transaction read it.
func (h *highWater) check(r *record, raise bool, onRollback func(RollbackEvent), since uint64) error {
	cur := r.current()
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := h.seen[r.ID]
	if cur < seen && h.raisedAt[r.ID] > since {
		return nil
	}
	if cur < seen {
		if onRollback != nil {
			onRollback(RollbackEvent{ID: r.ID, Name: r.Name, Current: cur, Seen: seen})
		}
		return fmt.Errorf("%w: %s '%s' is at version %d in the store but this host has already seen version %d: the store was rolled back or its newest version removed; refusing it until the record is restored", ErrRollback, r.kind(), r.Name, cur, seen)
	}
	if raise && cur > seen {
		h.set(r.ID, cur)
	}
	return nil
}

// set raises id's mark to version. The caller holds h.mu.
func (h *highWater) set(id string, version int) {
	h.seen[id] = version
	gen := h.gen.Add(1)
	if h.raisedAt == nil {
		h.raisedAt = map[string]uint64{}
	}
	h.raisedAt[id] = gen
	h.dirty = true
}

// generation is the count of raises so far, for since.
func (h *highWater) generation() uint64 { return h.gen.Load() }

// raise raises id's mark to version, if it is higher.
func (h *highWater) raise(id string, version int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if version > h.seen[id] {
		h.set(id, version)
	}
}

// flush has the marks raised since the last save written behind the
// caller, by one saver goroutine that coalesces them: every first read of
// a secret raises its mark, and a Mount reading five secrets must not wait
// on five syncs of a file that names every secret. Until written, the
// marks protect this process from memory. A failed save (a full data root)
// is tried again at the next flush: a read never fails for it.
func (h *highWater) flush() {
	h.mu.Lock()
	dirty := h.dirty
	h.mu.Unlock()
	if !dirty || h.path == "" {
		return
	}
	h.start.Do(func() {
		h.kick, h.stop, h.done = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
		go h.saver()
	})
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// saveGap is the least time between two saves of the marks. The first read
// of each version raises its mark, so a burst of container starts reading
// new secrets raises marks at every Mount; saving each time keeps a core
// busy re-encoding every mark. A crash loses at most the raises of the
// last gap: after it, a rollback to a version seen only in that gap passes.
const saveGap = 250 * time.Millisecond

func (h *highWater) saver() {
	defer close(h.done)
	for {
		select {
		case <-h.kick:
			h.saveDirty()
		case <-h.stop:
			return
		}
		select {
		case <-time.After(saveGap):
		case <-h.stop:
			return
		}
	}
}

// saveDirty writes the marks if any was raised since the last write, with
// the lock on the marks held only to copy them: encoding 10,000 marks takes
// milliseconds, and every Mount's read checks a mark under that lock.
func (h *highWater) saveDirty() error {
	h.saveMu.Lock()
	defer h.saveMu.Unlock()
	h.mu.Lock()
	if !h.dirty {
		h.mu.Unlock()
		return nil
	}
	seen := maps.Clone(h.seen)
	h.dirty = false
	h.mu.Unlock()
	b, err := json.Marshal(seen)
	if err == nil {
		err = h.write(b)
	}
	if err != nil {
		h.mu.Lock()
		h.dirty = true
		h.mu.Unlock()
	}
	return err
}

// close stops the saver and writes what is left.
func (h *highWater) close() error {
	h.start.Do(func() {}) // no saver may start after this
	if h.stop != nil {
		close(h.stop)
		<-h.done
	}
	return h.saveDirty()
}

// forget drops a removed secret's mark.
func (h *highWater) forget(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.seen[id]; ok {
		delete(h.seen, id)
		delete(h.raisedAt, id)
		h.dirty = true
	}
	h.mu.Unlock()
	h.saveDirty()
	h.mu.Lock() // for the deferred unlock
}

// write puts b in the marks' file atomically. The caller holds saveMu.
func (h *highWater) write(b []byte) error {
	if h.path == "" {
		return nil
	}
	if err := atomicfile.Write(h.path, b); err != nil {
		return fmt.Errorf("save version high-water marks: %w", err)
	}
	return nil
}

// RollbackEvent describes a refused rollback, for the log and metrics.
type RollbackEvent struct {
	ID, Name string
	// Current is the version the store holds; Seen the highest this host saw.
	Current, Seen int
}

// setKEK installs kek and the MAC key derived from it. The caller holds
// s.mu for writing (or owns s alone).
func (s *Store) setKEK(kek *envelope.Key) error {
	mk, err := macKeyOf(kek)
	if err != nil {
		return err
	}
	s.kek.Wipe()
	s.macKey.Wipe()
	s.kek, s.macKey = kek, mk
	return nil
}

// dropKEK forgets the KEK and the MAC key. The caller holds s.mu.
func (s *Store) dropKEK() {
	s.kek.Wipe()
	s.macKey.Wipe()
	s.kek, s.macKey = nil, nil
}

// bindKeyRecord moves a key record of the format that did not bind its
// mode, generation and epoch to the current one: the same KEK, wrapped
// under the same root key, with those fields in its associated data.
// Another host may have done it meanwhile. The caller holds s.mu for
// writing, or owns s alone.
func (s *Store) bindKeyRecord(root []byte) error {
	err := s.b.Update(func(tx Tx) error {
		rec, err := getKEKRecord(tx)
		if err != nil {
			return err
		}
		if err := s.sameKEK(rec); err != nil {
			return err
		}
		kek, format, err := rec.unwrap(root)
		kek.Wipe()
		if err != nil || format == kekFormat {
			return err
		}
		next, err := wrapKEK(root, rec.Mode, rec.Generation, rec.Epoch, s.kek)
		if err != nil {
			return err
		}
		return putKEKRecord(tx, next)
	})
	if err != nil {
		return fmt.Errorf("bind the key record's mode, generation and epoch: %w", err)
	}
	return nil
}

// migrateMACs gives every record of a store from before record MACs its
// MAC, then re-wraps the KEK under the current key record format, which
// says every record carries one, so a record stripped of its MAC later is
// refused.
// Records are done one transaction each (etcd bounds a transaction's
// operations); a host that stops halfway does the rest next time.
func (s *Store) migrateMACs(root []byte) error {
	var ids []string
	if err := s.b.View(func(tx Tx) error {
		return tx.ForEach("secrets", func(k string, _ []byte) error {
			ids = append(ids, k)
			return nil
		})
	}); err != nil {
		return err
	}
	for _, id := range ids {
		if err := s.b.Update(func(tx Tx) error {
			v, err := tx.Get("secrets", id)
			if err != nil || v == nil {
				return err
			}
			var r record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("%w: secret %s: %v", ErrCorrupt, id, err)
			}
			if len(r.MAC) != 0 {
				return nil
			}
			if r.ID != id || !r.valid() {
				return fmt.Errorf("%w: secret %s: record does not match its key", ErrCorrupt, id)
			}
			return putRecord(tx, &r, s.macKey)
		}); err != nil {
			return fmt.Errorf("authenticate the records of a store from an older secretd: %w", err)
		}
	}
	err := s.b.Update(func(tx Tx) error {
		rec, err := getKEKRecord(tx)
		if err != nil {
			return err
		}
		if err := s.sameKEK(rec); err != nil {
			return err
		}
		kek, format, err := rec.unwrap(root)
		kek.Wipe()
		if err != nil || format == kekFormat {
			return err // done meanwhile by another host
		}
		next, err := wrapKEK(root, rec.Mode, rec.Generation, rec.Epoch, s.kek)
		if err != nil {
			return err
		}
		return putKEKRecord(tx, next)
	})
	if err != nil {
		return fmt.Errorf("authenticate the records of a store from an older secretd: %w", err)
	}
	s.macOn = true
	return nil
}
