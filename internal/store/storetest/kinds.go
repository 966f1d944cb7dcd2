package storetest

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secretd/secretd/internal/store"
)

// Kinds runs the contract of secrets and configs kept side by side in one
// store over a backend: open returns a fresh, empty backend (the store
// closes it). Every backend runs it, so a config is kept as a secret is on
// each: versions, pins, KEK rotation, its own namespace of names.
func Kinds(t *testing.T, open func(t *testing.T) store.Backend) {
	for _, c := range []struct {
		name string
		run  func(*testing.T, *store.Store, string)
	}{
		{"SharedNameSeparateRecords", sharedName},
		{"ConfigSizeCap", configSizeCap},
		{"ConfigVersionsAndPins", configVersions},
		{"RemoveOneKindKeepsTheOther", removeOneKind},
		{"KEKRotationCoversConfigs", kekRotationCoversConfigs},
		{"Templates", templates},
		{"UpdateHookSaysTheKind", updateHookKind},
	} {
		t.Run(c.name, func(t *testing.T) {
			keyFile := filepath.Join(t.TempDir(), "key")
			s, _, err := store.Open(open(t), store.Config{KeyFile: keyFile})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			c.run(t, s, keyFile)
		})
	}
}

func create(t *testing.T, s *store.Store, name, data string) store.Secret {
	t.Helper()
	sec, err := s.Create(store.Spec{Name: name, Data: []byte(data)})
	if err != nil {
		t.Fatalf("create %s %s: %v", s.Kind(), name, err)
	}
	return sec
}

func reveal(t *testing.T, s *store.Store, ref string, v int) string {
	t.Helper()
	data, _, err := s.Reveal(ref, v)
	if err != nil {
		t.Fatalf("reveal %s %s@%d: %v", s.Kind(), ref, v, err)
	}
	return string(data)
}

// sharedName: as in Swarm, a secret and a config may share a name; each
// view finds only its own, by name, ID or ID prefix.
func sharedName(t *testing.T, s *store.Store, _ string) {
	cfgs := s.Configs()
	sec := create(t, s, "site", "secret-bytes")
	cfg := create(t, cfgs, "site", "config-bytes")
	if sec.Kind != store.KindSecret || cfg.Kind != store.KindConfig || sec.ID == cfg.ID {
		t.Fatalf("kinds %q %q, IDs %s %s", sec.Kind, cfg.Kind, sec.ID, cfg.ID)
	}
	if got := reveal(t, s, "site", 0); got != "secret-bytes" {
		t.Errorf("secret site reads %q", got)
	}
	if got := reveal(t, cfgs, "site", 0); got != "config-bytes" {
		t.Errorf("config site reads %q", got)
	}
	for _, c := range []struct {
		view *store.Store
		ref  string
	}{{s, cfg.ID}, {s, cfg.ID[:12]}, {cfgs, sec.ID}, {cfgs, sec.ID[:12]}} {
		_, err := c.view.Get(c.ref)
		if !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), string(c.view.Kind())+" '") {
			t.Errorf("%s view, ref %s of the other kind: %v, want %s not found", c.view.Kind(), c.ref, err, c.view.Kind())
		}
	}
	if _, err := cfgs.Create(store.Spec{Name: "site", Data: []byte("x")}); !errors.Is(err, store.ErrExists) || err.Error() != "config site already exists" {
		t.Errorf("second config site: %v", err)
	}
	secrets, err := s.List(store.Filter{})
	if err != nil || len(secrets) != 1 || secrets[0].ID != sec.ID {
		t.Errorf("secrets listed: %+v, %v", secrets, err)
	}
	configs, err := cfgs.List(store.Filter{NamePrefixes: []string{"si"}})
	if err != nil || len(configs) != 1 || configs[0].ID != cfg.ID || configs[0].Kind != store.KindConfig {
		t.Errorf("configs listed: %+v, %v", configs, err)
	}
	if err := s.Verify(); err != nil {
		t.Errorf("verify: %v", err)
	}
}

// configSizeCap is Swarm's: 1 byte to under 1000 KiB; a secret's cap stays
// 500 KiB.
func configSizeCap(t *testing.T, s *store.Store, _ string) {
	cfgs := s.Configs()
	big := bytes.Repeat([]byte("c"), store.MaxConfigSize-1)
	if _, err := cfgs.Create(store.Spec{Name: "big", Data: big}); err != nil {
		t.Fatalf("config of %d bytes: %v", len(big), err)
	}
	for _, n := range []int{0, store.MaxConfigSize} {
		_, err := cfgs.Create(store.Spec{Name: "toobig", Data: bytes.Repeat([]byte("c"), n)})
		if want := "config data must be larger than 0 and less than 1024000 bytes"; err == nil || err.Error() != want {
			t.Errorf("config of %d bytes: %v, want %q", n, err, want)
		}
	}
	// Keep 1: a record holds every kept version, and etcd's default
	// --max-request-bytes (1.5 MiB) holds one version of this size.
	if _, err := cfgs.Update("big", big[:store.MaxConfigSize-2], 1, nil); err != nil {
		t.Errorf("update of a config within its cap: %v", err)
	}
	if _, err := s.Create(store.Spec{Name: "big", Data: big[:store.MaxSecretSize]}); err == nil || !strings.HasPrefix(err.Error(), "secret data must be") {
		t.Errorf("secret of %d bytes: %v", store.MaxSecretSize, err)
	}
	if _, err := cfgs.Create(store.Spec{Name: "drv", Source: &store.SourceSpec{Driver: "shell"}}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("config with a driver: %v", err)
	}
	if _, err := cfgs.Get("toobig"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused config was stored: %v", err)
	}
}

// configVersions: configs rotate in place and keep pinned versions, as
// secrets do.
func configVersions(t *testing.T, s *store.Store, _ string) {
	cfgs := s.Configs()
	create(t, cfgs, "app.conf", "v1")
	for _, d := range []string{"v2", "v3", "v4"} {
		if _, err := cfgs.Update("app.conf", []byte(d), 2, func(store.Secret) ([]int, error) { return []int{1}, nil }); err != nil {
			t.Fatal(err)
		}
	}
	c, err := cfgs.Get("app.conf")
	if err != nil {
		t.Fatal(err)
	}
	var kept []int
	for _, v := range c.Versions {
		kept = append(kept, v.Version)
	}
	if c.Current != 4 || len(kept) != 3 || kept[0] != 1 || kept[2] != 4 {
		t.Fatalf("current %d kept %v, want 4 and [1 3 4]", c.Current, kept)
	}
	if got := reveal(t, cfgs, "app.conf", 1); got != "v1" {
		t.Errorf("pinned version 1 reads %q", got)
	}
	if _, _, err := cfgs.Reveal("app.conf", 2); !errors.Is(err, store.ErrNotFound) || !strings.HasPrefix(err.Error(), "config 'app.conf' has no version 2") {
		t.Errorf("dropped version: %v", err)
	}
	if data, _, err := cfgs.RevealName("app.conf", 0); err != nil || string(data) != "v4" {
		t.Errorf("RevealName: %q, %v", data, err)
	}
	if _, _, err := s.RevealName("app.conf", 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a config revealed as a secret: %v", err)
	}
}

func removeOneKind(t *testing.T, s *store.Store, _ string) {
	cfgs := s.Configs()
	create(t, s, "x", "secret")
	create(t, cfgs, "x", "config")
	if _, err := cfgs.Remove("x", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := cfgs.Get("x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("removed config: %v", err)
	}
	if got := reveal(t, s, "x", 0); got != "secret" {
		t.Errorf("secret x after the config's removal: %q", got)
	}
	// The name is free again for a config.
	create(t, cfgs, "x", "again")
}

func kekRotationCoversConfigs(t *testing.T, s *store.Store, keyFile string) {
	cfgs := s.Configs()
	create(t, s, "a", "secret-a")
	create(t, cfgs, "a", "config-a")
	if _, err := s.RotateKEK(keyFile); err != nil {
		t.Fatal(err)
	}
	if got := reveal(t, cfgs, "a", 0); got != "config-a" {
		t.Errorf("config after KEK rotation: %q", got)
	}
	if got := reveal(t, s, "a", 0); got != "secret-a" {
		t.Errorf("secret after KEK rotation: %q", got)
	}
}

func templates(t *testing.T, s *store.Store, _ string) {
	cfgs := s.Configs()
	for _, view := range []*store.Store{s, cfgs} {
		sec, err := view.Create(store.Spec{Name: "dsn", Data: []byte(`dsn={{ secret "db" }}`), Template: store.TemplateGolang})
		if err != nil || sec.Template != store.TemplateGolang {
			t.Fatalf("%s template: %+v, %v", view.Kind(), sec, err)
		}
		got, err := view.Get("dsn")
		if err != nil || got.Template != store.TemplateGolang {
			t.Errorf("%s template read back: %+v, %v", view.Kind(), got, err)
		}
		if _, err := view.Create(store.Spec{Name: "other", Data: []byte("x"), Template: "jinja"}); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%s with template driver jinja: %v", view.Kind(), err)
		}
	}
	if _, err := s.Create(store.Spec{Name: "drv", Template: store.TemplateGolang, Source: &store.SourceSpec{Driver: "shell"}}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("driver secret with a template: %v", err)
	}
}

func updateHookKind(t *testing.T, s *store.Store, _ string) {
	var got []store.Secret
	s.OnUpdate(func(sec store.Secret) { got = append(got, sec) })
	create(t, s, "n", "1")
	create(t, s.Configs(), "n", "1")
	if _, err := s.Configs().Update("n", []byte("2"), 0, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update("n", []byte("2"), 0, nil); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Kind != store.KindConfig || got[1].Kind != store.KindSecret {
		t.Fatalf("hooks heard %+v, want the config then the secret", got)
	}
}
