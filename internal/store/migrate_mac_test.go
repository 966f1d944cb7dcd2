package store

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"

	"github.com/secretd/secretd/internal/store/envelope"
)

// A store written before record MACs (no MAC on any record, key record
// under the v1 AAD) opens, gets a MAC on every record and moves to the v2
// key record; from then on a record stripped of its MAC is refused.
func TestMigrateRecordMACs(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{KeyFile: filepath.Join(dir, "key")}
	b := &reopenable{memBackend: newMemBackend()}
	s, _, err := Open(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	sec, err := s.Create(Spec{Name: "old", Data: []byte("from-an-older-secretd")})
	if err != nil {
		t.Fatal(err)
	}
	// Make it what an older secretd wrote.
	root, err := readKeyFile(cfg.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Update(func(tx Tx) error {
		v, _ := tx.Get("secrets", sec.ID)
		var r record
		json.Unmarshal(v, &r)
		r.MAC = nil
		v, _ = json.Marshal(r)
		if err := tx.Put("secrets", sec.ID, v); err != nil {
			return err
		}
		rec, _ := getKEKRecord(tx)
		wk, _ := envelope.DeriveKey(root, rec.Salt, kekPurpose)
		raw := s.kek.Bytes()
		rec.Wrapped, err = envelope.Seal(wk, raw, []byte(kekAADv1))
		return putKEKRecord(tx, *rec)
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, _, err = Open(b, cfg)
	if err != nil {
		t.Fatalf("open a store from before record MACs: %v", err)
	}
	defer s.Close()
	if data, _, err := s.RevealName("old", 0); err != nil || string(data) != "from-an-older-secretd" {
		t.Fatalf("after migration: %q, %v", data, err)
	}
	var stripped []byte
	b.View(func(tx Tx) error {
		v, _ := tx.Get("secrets", sec.ID)
		var r record
		json.Unmarshal(v, &r)
		if len(r.MAC) == 0 {
			t.Errorf("the record has no MAC after migration")
		}
		r.MAC = nil
		stripped, _ = json.Marshal(r)
		rec, _ := getKEKRecord(tx)
		if _, format, err := rec.unwrap(root); err != nil || format != kekFormat {
			t.Errorf("key record after migration: format %d, %v", format, err)
		}
		return nil
	})
	b.Update(func(tx Tx) error { return tx.Put("secrets", sec.ID, stripped) })
	if _, _, err := s.RevealName("old", 0); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a record stripped of its MAC after migration: %v, want ErrCorrupt", err)
	}
}

// reopenable is a memBackend that a closed Store leaves usable, as a
// reopened bolt file would be.
type reopenable struct{ *memBackend }

func (reopenable) Close() error { return nil }
