package store_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secretd/secretd/internal/store"
	"github.com/secretd/secretd/internal/store/bolt"
)

// rawEnv is a store over a bolt backend the test also writes to directly,
// as someone with write access to the backend (etcd) could.
type rawEnv struct {
	b  *bolt.Backend
	s  *store.Store
	hw string
}

func openRaw(t *testing.T, cfg store.Config) rawEnv {
	t.Helper()
	dir := t.TempDir()
	b, err := bolt.Open(filepath.Join(dir, "secrets.db"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.KeyFile == "" {
		cfg.KeyFile = filepath.Join(dir, "key")
	}
	if cfg.HighWaterFile == "" {
		cfg.HighWaterFile = filepath.Join(dir, "versions.json")
	}
	s, _, err := store.Open(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return rawEnv{b: b, s: s, hw: cfg.HighWaterFile}
}

func (e rawEnv) get(t *testing.T, bucket, key string) []byte {
	t.Helper()
	var v []byte
	if err := e.b.View(func(tx store.Tx) (err error) { v, err = tx.Get(bucket, key); return err }); err != nil {
		t.Fatal(err)
	}
	return v
}

func (e rawEnv) put(t *testing.T, bucket, key string, v []byte) {
	t.Helper()
	if err := e.b.Update(func(tx store.Tx) error { return tx.Put(bucket, key, v) }); err != nil {
		t.Fatal(err)
	}
}

// editRecord rewrites a stored record's JSON with fn, leaving its MAC as it was.
func (e rawEnv) editRecord(t *testing.T, id string, fn func(m map[string]any)) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(e.get(t, "secrets", id), &m); err != nil {
		t.Fatal(err)
	}
	fn(m)
	v, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	e.put(t, "secrets", id, v)
}

// refused checks that a reveal of name fails as corrupt and gives no data.
func refused(t *testing.T, s *store.Store, name, want string) {
	t.Helper()
	data, _, err := s.RevealName(name, 0)
	if err == nil || data != nil {
		t.Fatalf("reveal %s gave %q, %v: want it refused as corrupt", name, data, err)
	}
	if !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), want) {
		t.Fatalf("reveal %s: %v, want ErrCorrupt saying %q", name, err, want)
	}
}

// A names/X pointer moved to another secret's record must not hand out
// that secret's data under the name X.
func TestForgedNamePointerRefused(t *testing.T) {
	e := openRaw(t, store.Config{})
	mustCreate(t, e.s, "public", "harmless")
	victim := mustCreate(t, e.s, "private", "the-private-canary")
	e.put(t, "names", "public", []byte(victim.ID))
	refused(t, e.s, "public", "name index points at secret "+victim.ID+", which is named 'private'")
	if _, err := e.s.Get("public"); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("get through a forged name pointer: %v, want ErrCorrupt", err)
	}
	if data, _, err := e.s.RevealName("private", 0); err != nil || string(data) != "the-private-canary" {
		t.Fatalf("the secret the pointer was moved to: %q, %v", data, err)
	}
}

// Dropping the newest version from a stored record would hand out the
// rotated-out value; the record's MAC refuses it.
func TestRemovedNewestVersionRefused(t *testing.T) {
	e := openRaw(t, store.Config{})
	sec := mustCreate(t, e.s, "db", "old-value")
	if _, err := e.s.Update("db", []byte("new-value"), 0, nil); err != nil {
		t.Fatal(err)
	}
	e.editRecord(t, sec.ID, func(m map[string]any) {
		vs := m["versions"].([]any)
		m["versions"] = vs[:len(vs)-1]
	})
	refused(t, e.s, "db", "fails authentication")
	if _, err := e.s.Get("db"); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("get of a record whose newest version was removed: %v, want ErrCorrupt", err)
	}
	if _, err := e.s.List(store.Filter{}); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("list with a record whose newest version was removed: %v, want ErrCorrupt", err)
	}
}

// Reordering the version list would make an old version current.
func TestTamperedVersionListRefused(t *testing.T) {
	e := openRaw(t, store.Config{})
	sec := mustCreate(t, e.s, "api", "v1")
	if _, err := e.s.Update("api", []byte("v2"), 0, nil); err != nil {
		t.Fatal(err)
	}
	e.editRecord(t, sec.ID, func(m map[string]any) {
		vs := m["versions"].([]any)
		vs[0], vs[1] = vs[1], vs[0]
	})
	refused(t, e.s, "api", "fails authentication")
}

// An old copy of a record carries a valid MAC; the host's high-water mark
// refuses it, also after a restart, and the rollback is reported.
func TestReplayedRecordRefused(t *testing.T) {
	var events []store.RollbackEvent
	dir := t.TempDir()
	cfg := store.Config{KeyFile: filepath.Join(dir, "key"), HighWaterFile: filepath.Join(dir, "versions.json"),
		OnRollback: func(ev store.RollbackEvent) { events = append(events, ev) }}
	b, err := bolt.Open(filepath.Join(dir, "secrets.db"))
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := store.Open(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e := rawEnv{b: b, s: s}
	sec := mustCreate(t, s, "tls_key", "v1")
	old := e.get(t, "secrets", sec.ID)
	if _, err := s.Update("tls_key", []byte("v2"), 0, nil); err != nil {
		t.Fatal(err)
	}
	e.put(t, "secrets", sec.ID, old)
	refused(t, s, "tls_key", "this host has already seen version 2")
	if len(events) != 1 || events[0].Name != "tls_key" || events[0].Current != 1 || events[0].Seen != 2 {
		t.Fatalf("rollback events: %+v, want one for tls_key at 1 after 2", events)
	}
	s.Close()

	b, err = bolt.Open(filepath.Join(dir, "secrets.db"))
	if err != nil {
		t.Fatal(err)
	}
	s, _, err = store.Open(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	refused(t, s, "tls_key", "this host has already seen version 2")
}

// Two hosts on one autolocked store: after host A rotates the unlock key,
// host B (still holding the old one) must not wrap a new KEK with it, which
// would leave the store openable only by the old key.
func TestKeyRotateRefusesStaleUnlockKey(t *testing.T) {
	dir := t.TempDir()
	b, err := bolt.Open(filepath.Join(dir, "secrets.db"))
	if err != nil {
		t.Fatal(err)
	}
	a, k1, err := store.Open(b, store.Config{Autolock: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	mustCreate(t, a, "shared", "value")
	hostB, _, err := store.Open(b, store.Config{Autolock: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := hostB.Unlock(k1); err != nil {
		t.Fatal(err)
	}
	k2, err := a.RotateUnlockKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hostB.RotateKEK(""); err == nil || !errors.Is(err, store.ErrBadKey) {
		t.Fatalf("key rotate on a host holding the replaced unlock key: %v, want refused", err)
	}
	if _, err := hostB.RotateUnlockKey(); err == nil {
		t.Fatalf("unlock-key rotate on a host holding the replaced unlock key succeeded")
	}
	fresh, _, err := store.Open(b, store.Config{Autolock: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := fresh.Unlock(k2); err != nil {
		t.Fatalf("the current unlock key no longer opens the store: %v", err)
	}
	if data, _, err := fresh.RevealName("shared", 0); err != nil || string(data) != "value" {
		t.Fatalf("reveal with the current unlock key: %q, %v", data, err)
	}
	if err := fresh.Lock(); err != nil {
		t.Fatal(err)
	}
	if err := fresh.Unlock(k1); !errors.Is(err, store.ErrBadKey) {
		t.Fatalf("the replaced unlock key: %v, want ErrBadKey", err)
	}
}

// A record's MAC holds over the store's own encoding: a secret created
// with empty labels (as the API sends them) reads back after a reopen.
func TestRecordMACSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	cfg := store.Config{KeyFile: filepath.Join(dir, "key"), HighWaterFile: filepath.Join(dir, "versions.json")}
	open := func() *store.Store {
		b, err := bolt.Open(filepath.Join(dir, "secrets.db"))
		if err != nil {
			t.Fatal(err)
		}
		s, _, err := store.Open(b, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	for i, labels := range []map[string]string{{}, nil, {"env": "prod"}} {
		if _, err := s.Create(store.Spec{Name: fmt.Sprintf("s%d", i), Labels: labels, Data: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s = open()
	defer s.Close()
	for i := range 3 {
		if _, _, err := s.RevealName(fmt.Sprintf("s%d", i), 0); err != nil {
			t.Fatalf("after a reopen: %v", err)
		}
	}
	if _, err := s.List(store.Filter{}); err != nil {
		t.Fatalf("list after a reopen: %v", err)
	}
}

// A key file reached through a symlink, or owned by another user, is
// refused: whoever controls the link or the file chooses the key.
func TestKeyFileSymlinkAndOwnerRefused(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real.key")
	b, err := bolt.Open(filepath.Join(dir, "secrets.db"))
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := store.Open(b, store.Config{KeyFile: real})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	link := filepath.Join(dir, "link.key")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	open := func(key string) error {
		b, err := bolt.Open(filepath.Join(dir, "secrets.db"))
		if err != nil {
			t.Fatal(err)
		}
		s, _, err := store.Open(b, store.Config{KeyFile: key})
		if err != nil {
			b.Close()
			return err
		}
		return s.Close()
	}
	if err := open(link); err == nil || !strings.Contains(err.Error(), "is a symbolic link") {
		t.Fatalf("a key file behind a symlink: %v, want refused", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("chown needs root")
	}
	if err := os.Chown(real, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := open(real); err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Fatalf("a key file owned by another user: %v, want refused", err)
	}
	if err := os.Chown(real, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := open(real); err != nil {
		t.Fatalf("the key file itself, owned by root: %v", err)
	}
}
