package store_test

import (
	"errors"
	"testing"

	"github.com/secretd/secretd/internal/store"
)

// TestKindIsAuthenticated: a record's kind is covered by its MAC and its
// versions' AAD, so whoever can write the backend cannot turn a config
// into a secret (or back), nor move a config's envelope into a secret.
func TestKindIsAuthenticated(t *testing.T) {
	t.Run("kind flipped", func(t *testing.T) {
		e := newEnv(t)
		s, _ := e.open(t, store.Config{})
		cfg, err := s.Configs().Create(store.Spec{Name: "c", Data: []byte("canary-config")})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		tamper(t, e.db, cfg.ID, func(rec map[string]any) { delete(rec, "kind") })
		s2, _ := e.open(t, store.Config{})
		if data, _, err := s2.Reveal(cfg.ID, 0); !errors.Is(err, store.ErrCorrupt) {
			t.Fatalf("a config record relabelled as a secret: %q, %v", data, err)
		}
	})
	t.Run("envelope moved across kinds", func(t *testing.T) {
		e := newEnv(t)
		s, _ := e.open(t, store.Config{})
		cfg, err := s.Configs().Create(store.Spec{Name: "x", Data: []byte("config-bytes")})
		if err != nil {
			t.Fatal(err)
		}
		sec := mustCreate(t, s, "x", "secret-bytes")
		s.Close()
		var versions any
		tamper(t, e.db, cfg.ID, func(rec map[string]any) { versions = rec["versions"] })
		tamper(t, e.db, sec.ID, func(rec map[string]any) { rec["versions"] = versions })
		s2, _ := e.open(t, store.Config{})
		if data, _, err := s2.Reveal("x", 0); !errors.Is(err, store.ErrCorrupt) {
			t.Fatalf("a config's envelope opened as the secret's: %q, %v", data, err)
		}
	})
	t.Run("template flag dropped", func(t *testing.T) {
		e := newEnv(t)
		s, _ := e.open(t, store.Config{})
		tpl, err := s.Create(store.Spec{Name: "t", Data: []byte(`{{ secret "a" }}`), Template: store.TemplateGolang})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		tamper(t, e.db, tpl.ID, func(rec map[string]any) { delete(rec, "template") })
		s2, _ := e.open(t, store.Config{})
		if _, err := s2.Get("t"); !errors.Is(err, store.ErrCorrupt) {
			t.Fatalf("a template record stripped of its driver: %v", err)
		}
	})
}
