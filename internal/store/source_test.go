package store_test

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/secretd/secretd/internal/store"
)

// TestDriverSecret: a driver secret has no version until a value is
// cached, its options are sealed (never in the file), its source is
// covered by the record's MAC, and a KEK rotation re-wraps the options.
func TestDriverSecret(t *testing.T) {
	e := newEnv(t)
	s, _ := e.open(t, store.Config{})
	const token = "CANARY-opt-token-5c1e"
	sec, err := s.Create(store.Spec{Name: "db", Labels: map[string]string{"a": "b"}, Source: &store.SourceSpec{
		Driver: "shell", Options: map[string]string{"lookup": "TOKEN=" + token + " fetch", "timeout": "5s"}, Cache: true, Refresh: time.Minute,
	}})
	if err != nil {
		t.Fatal(err)
	}
	if sec.Current != 0 || len(sec.Versions) != 0 || sec.Source == nil || sec.Source.Driver != "shell" ||
		!slices.Equal(sec.Source.OptionKeys, []string{"lookup", "timeout"}) || !sec.Source.Cache || sec.Source.Refresh != time.Minute {
		t.Fatalf("created %+v (source %+v)", sec, sec.Source)
	}
	if _, got, err := s.RevealName("db", 0); !errors.Is(err, store.ErrNotFound) || got.Source == nil {
		t.Fatalf("reveal of a driver secret without a value: %v (secret %+v)", err, got)
	}
	opts, _, err := s.SourceOptions("db")
	if err != nil || opts["lookup"] != "TOKEN="+token+" fetch" || opts["timeout"] != "5s" {
		t.Fatalf("options %v, %v", opts, err)
	}
	if _, err := s.SaveCache(sec.ID, []byte("v1")); err != nil {
		t.Fatal(err)
	}
	again, err := s.SaveCache(sec.ID, []byte("v1"))
	if err != nil || again.Current != 1 {
		t.Fatalf("saving the same value again: version %d, %v", again.Current, err)
	}
	after, err := s.SaveCache(sec.ID, []byte("v2"))
	if err != nil || after.Current != 2 || len(after.Versions) != 1 {
		t.Fatalf("saving a new value: %+v, %v", after, err)
	}
	if data, _, err := s.Reveal("db", 0); err != nil || string(data) != "v2" {
		t.Fatalf("cached value %q, %v", data, err)
	}
	if _, err := s.RotateKEK(e.keyFile); err != nil {
		t.Fatal(err)
	}
	if opts, _, err := s.SourceOptions("db"); err != nil || opts["lookup"] != "TOKEN="+token+" fetch" {
		t.Fatalf("options after KEK rotation: %v, %v", opts, err)
	}
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	raw, _ := os.ReadFile(e.db)
	if bytes.Contains(raw, []byte(token)) || bytes.Contains(raw, []byte("fetch")) {
		t.Fatal("a driver option's value is in the store file in plaintext")
	}

	// The source is authenticated: a changed driver or refresh is refused.
	tamper(t, e.db, sec.ID, func(rec map[string]any) {
		rec["source"].(map[string]any)["driver"] = "evil"
	})
	s2, _ := e.open(t, store.Config{})
	if _, err := s2.Get("db"); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("a tampered driver name: %v, want ErrCorrupt", err)
	}
}

// TestDriverSecretValidation: a driver secret needs a driver; a stored
// secret still needs data.
func TestDriverSecretValidation(t *testing.T) {
	e := newEnv(t)
	s, _ := e.open(t, store.Config{})
	if _, err := s.Create(store.Spec{Name: "x", Source: &store.SourceSpec{}}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("no driver name: %v", err)
	}
	if _, err := s.Create(store.Spec{Name: "y"}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("no data, no source: %v", err)
	}
	if list, _ := s.List(store.Filter{}); len(list) != 0 {
		t.Errorf("refused creates stored %d secrets", len(list))
	}
}

// TestCommandsByAuthenticated: the host that named a driver secret's
// commands is kept, read back, and covered by the record's MAC, so whoever
// can write the backend cannot claim a command came from another host's
// root (a host trusts only its own, see the shell driver).
func TestCommandsByAuthenticated(t *testing.T) {
	e := newEnv(t)
	s, _ := e.open(t, store.Config{})
	sec, err := s.Create(store.Spec{Name: "db", Source: &store.SourceSpec{
		Driver: "shell", Options: map[string]string{"lookup": "printf v"}, CommandsBy: "host-a",
	}})
	if err != nil {
		t.Fatal(err)
	}
	if sec.Source.CommandsBy != "host-a" {
		t.Fatalf("created: CommandsBy %q, want host-a", sec.Source.CommandsBy)
	}
	if _, got, err := s.SourceOptions("db"); err != nil || got.Source.CommandsBy != "host-a" {
		t.Fatalf("read back: %+v, %v", got.Source, err)
	}
	s.Close()
	tamper(t, e.db, sec.ID, func(rec map[string]any) {
		rec["source"].(map[string]any)["commands_by"] = "host-b"
	})
	s2, _ := e.open(t, store.Config{})
	if _, err := s2.Get("db"); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("a forged CommandsBy: %v, want ErrCorrupt", err)
	}
}

// TestListFromSource: the FromSource filter keeps the secrets a mount asks
// their driver for, and leaves out stored ones and those a refresher keeps
// in the store.
func TestListFromSource(t *testing.T) {
	e := newEnv(t)
	s, _ := e.open(t, store.Config{})
	for _, spec := range []store.Spec{
		{Name: "stored", Data: []byte("v")},
		{Name: "asked", Source: &store.SourceSpec{Driver: "shell", Options: map[string]string{"lookup": "x"}}},
		{Name: "refreshed", Source: &store.SourceSpec{Driver: "shell", Options: map[string]string{"lookup": "x"}, Cache: true, Refresh: time.Minute}},
	} {
		if _, err := s.Create(spec); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.List(store.Filter{FromSource: true})
	if err != nil || len(list) != 1 || list[0].Name != "asked" {
		t.Fatalf("FromSource lists %v, %v; want only 'asked'", list, err)
	}
}
