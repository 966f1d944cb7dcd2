package store

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secretd/secretd/internal/store/envelope"
)

// asV2 rewrites b's key record in the format before mode, generation and
// epoch were bound: what a store an older secretd wrote holds.
func asV2(t *testing.T, b Backend, root []byte, kek *envelope.Key) {
	t.Helper()
	if err := b.Update(func(tx Tx) error {
		rec, err := getKEKRecord(tx)
		if err != nil {
			return err
		}
		wk, err := envelope.DeriveKey(root, rec.Salt, kekPurpose)
		if err != nil {
			return err
		}
		if rec.Wrapped, err = envelope.Seal(wk, kek.Bytes(), []byte(kekAADv2)); err != nil {
			return err
		}
		return putKEKRecord(tx, *rec)
	}); err != nil {
		t.Fatal(err)
	}
}

func keyRecordFormat(t *testing.T, b Backend, root []byte) int {
	t.Helper()
	var format int
	b.View(func(tx Tx) error {
		rec, _ := getKEKRecord(tx)
		kek, f, err := rec.unwrap(root)
		kek.Wipe()
		if err != nil {
			t.Fatalf("the key record does not open: %v", err)
		}
		format = f
		return nil
	})
	return format
}

// TestKeyRecordMovesToBoundFormat: a store whose key record does not bind
// its mode, generation and epoch (an older secretd's) keeps opening, and
// its key record moves to the bound format; the host records that, and
// from then on refuses the older format written back. Without the host's
// state file (a host new to the store) the older format is taken up again.
func TestKeyRecordMovesToBoundFormat(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "keyring.json")
	cfg := Config{KeyFile: filepath.Join(dir, "key"), KeyStateFile: state}
	b := &reopenable{memBackend: newMemBackend()}
	s, _, err := Open(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(Spec{Name: "kept", Data: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	root, _ := readKeyFile(cfg.KeyFile)
	asV2(t, b, root, s.kek)
	kept := s.kek.Bytes()
	s.Close()
	kek, _ := envelope.KeyFromBytes(kept)

	os.Remove(state) // a host that opened it only with an older secretd
	s, _, err = Open(b, cfg)
	if err != nil {
		t.Fatalf("open a store with an unbound key record: %v", err)
	}
	if data, _, err := s.RevealName("kept", 0); err != nil || string(data) != "v" {
		t.Fatalf("after the key record moved: %q, %v", data, err)
	}
	s.Close()
	if f := keyRecordFormat(t, b, root); f != kekFormat {
		t.Errorf("key record format %d after open, want %d", f, kekFormat)
	}
	if st, err := os.ReadFile(state); err != nil || !strings.Contains(string(st), `"key_record_format":3`) {
		t.Errorf("host state %q, %v", st, err)
	}

	asV2(t, b, root, kek)
	if _, _, err := Open(b, cfg); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "older format (2) than this host has already opened the store in (3") {
		t.Errorf("an unbound key record written back: %v", err)
	}
	if _, _, err := Open(b, Config{KeyFile: cfg.KeyFile}); err != nil {
		t.Errorf("a host without state takes it up: %v", err)
	}
}

// TestDowngradeRefusedAtUnlock: an autolocked store refuses, at unlock, a
// key record from before record MACs once this host has opened the store
// with them, and a bound key record whose epoch was edited does not open.
func TestDowngradeRefusedAtUnlock(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Autolock: true, KeyStateFile: filepath.Join(dir, "keyring.json")}
	b := &reopenable{memBackend: newMemBackend()}
	s, key, err := Open(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := parseUnlockKey(key)
	var good []byte
	b.View(func(tx Tx) (err error) { good, err = tx.Get("meta", "kek"); return err })
	// The key record an older secretd wrote, kept by someone.
	if err := b.Update(func(tx Tx) error {
		rec, _ := getKEKRecord(tx)
		wk, _ := envelope.DeriveKey(raw, rec.Salt, kekPurpose)
		rec.Wrapped, err = envelope.Seal(wk, s.kek.Bytes(), []byte(kekAADv1))
		return putKEKRecord(tx, *rec)
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, _, err = Open(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Unlock(key); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "from before record MACs") {
		t.Errorf("unlock with an old key record written back: %v", err)
	}
	if !s.Locked() {
		t.Error("a refused unlock left the store unlocked")
	}

	var rec map[string]any
	json.Unmarshal(good, &rec)
	rec["epoch"] = 3
	edited, _ := json.Marshal(rec)
	b.Update(func(tx Tx) error { return tx.Put("meta", "kek", edited) })
	if err := s.Unlock(key); !errors.Is(err, ErrBadKey) {
		t.Errorf("unlock of a key record whose epoch was edited: %v, want ErrBadKey", err)
	}
	b.Update(func(tx Tx) error { return tx.Put("meta", "kek", good) })
	if err := s.Unlock(key); err != nil {
		t.Errorf("unlock of the good key record: %v", err)
	}
	s.Close()
}
