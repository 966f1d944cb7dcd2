package store_test

import (
	"bytes"
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

type env struct {
	dir, db, keyFile string
}

func newEnv(t testing.TB) env {
	dir := t.TempDir()
	return env{dir: dir, db: filepath.Join(dir, "secrets.db"), keyFile: filepath.Join(dir, "key")}
}

func (e env) open(t testing.TB, cfg store.Config) (*store.Store, string) {
	t.Helper()
	b, err := bolt.Open(e.db)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.KeyFile == "" {
		cfg.KeyFile = e.keyFile
	}
	s, key, err := store.Open(b, cfg)
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, key
}

func mustCreate(t testing.TB, s *store.Store, name, data string) store.Secret {
	t.Helper()
	sec, err := s.Create(store.Spec{Name: name, Data: []byte(data)})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return sec
}

func TestRoundTripAndReopen(t *testing.T) {
	e := newEnv(t)
	s, _ := e.open(t, store.Config{})
	sec := mustCreate(t, s, "db_password", "hunter2")
	if len(sec.ID) != 25 || strings.Trim(sec.ID, "0123456789abcdefghijklmnopqrstuvwxyz") != "" {
		t.Fatalf("ID %q is not 25 lowercase alphanumerics", sec.ID)
	}
	st, err := os.Stat(e.keyFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v", err, st.Mode())
	}
	s.Close()

	s2, _ := e.open(t, store.Config{})
	for _, ref := range []string{sec.ID, "db_password", sec.ID[:6]} {
		data, got, err := s2.Reveal(ref, 0)
		if err != nil || string(data) != "hunter2" || got.ID != sec.ID {
			t.Fatalf("reveal %s after reopen: %q, %v", ref, data, err)
		}
	}
	raw, _ := os.ReadFile(e.db)
	if bytes.Contains(raw, []byte("hunter2")) {
		t.Fatal("plaintext found in the store file")
	}
}

func TestValidation(t *testing.T) {
	s, _ := newEnv(t).open(t, store.Config{})
	mustCreate(t, s, "taken", "x")
	long := strings.Repeat("a", 65)
	cases := []struct {
		name string
		spec store.Spec
		kind error
		msg  string
	}{
		{"empty name", store.Spec{Name: "", Data: []byte("x")}, store.ErrInvalid, "name must be provided"},
		{"leading dash", store.Spec{Name: "-a", Data: []byte("x")}, store.ErrInvalid, "invalid name, only 64 [a-zA-Z0-9-_.] characters allowed"},
		{"trailing dot", store.Spec{Name: "a.", Data: []byte("x")}, store.ErrInvalid, "invalid name"},
		{"slash", store.Spec{Name: "a/b", Data: []byte("x")}, store.ErrInvalid, "invalid name"},
		{"space", store.Spec{Name: "a b", Data: []byte("x")}, store.ErrInvalid, "invalid name"},
		{"65 chars", store.Spec{Name: long, Data: []byte("x")}, store.ErrInvalid, "invalid name"},
		{"empty data", store.Spec{Name: "a", Data: nil}, store.ErrInvalid, "secret data must be larger than 0 and less than 512000 bytes"},
		{"500 KiB", store.Spec{Name: "a", Data: make([]byte, 500*1024)}, store.ErrInvalid, "secret data must be larger than 0 and less than 512000 bytes"},
		{"duplicate", store.Spec{Name: "taken", Data: []byte("x")}, store.ErrExists, "secret taken already exists"},
		{"label empty key", store.Spec{Name: "a", Data: []byte("x"), Labels: map[string]string{"": "v"}}, store.ErrInvalid, "label key must not be empty"},
		{"label key space", store.Spec{Name: "a", Data: []byte("x"), Labels: map[string]string{"a b": "v"}}, store.ErrInvalid, "must not contain"},
		{"label value newline", store.Spec{Name: "a", Data: []byte("x"), Labels: map[string]string{"k": "a\nb"}}, store.ErrInvalid, "control characters"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.Create(c.spec)
			if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v, want %v containing %q", err, c.kind, c.msg)
			}
		})
	}
	for _, ok := range []string{"a", "a1", "A-b_c.d", strings.Repeat("z", 64)} {
		if _, err := s.Create(store.Spec{Name: ok, Data: make([]byte, 500*1024-1)}); err != nil {
			t.Errorf("create %q: %v", ok, err)
		}
	}
	all, _ := s.List(store.Filter{})
	if len(all) != 5 {
		t.Fatalf("want 5 secrets after the refused creates, got %d", len(all))
	}
}

// tamper rewrites the stored record JSON of a secret with fn.
func tamper(t *testing.T, dbPath, id string, fn func(rec map[string]any)) {
	t.Helper()
	b, err := bolt.Open(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	err = b.Update(func(tx store.Tx) error {
		v, err := tx.Get("secrets", id)
		if err != nil || v == nil {
			t.Fatalf("record %s: %v", id, err)
		}
		var rec map[string]any
		if err := json.Unmarshal(v, &rec); err != nil {
			return err
		}
		fn(rec)
		v, _ = json.Marshal(rec)
		return tx.Put("secrets", id, v)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestTamperingIsDetected(t *testing.T) {
	flip := func(field string) func(map[string]any) {
		return func(rec map[string]any) {
			env := rec["versions"].([]any)[0].(map[string]any)["envelope"].(map[string]any)
			b := []byte(env[field].(string)) // base64 text: flipping a letter flips bits
			i := len(b) / 2
			if b[i] == 'A' {
				b[i] = 'B'
			} else {
				b[i] = 'A'
			}
			env[field] = string(b)
		}
	}
	for _, field := range []string{"data", "key"} {
		t.Run("flip "+field, func(t *testing.T) {
			e := newEnv(t)
			s, _ := e.open(t, store.Config{})
			sec := mustCreate(t, s, "a", "canary-value")
			s.Close()
			tamper(t, e.db, sec.ID, flip(field))
			s2, _ := e.open(t, store.Config{})
			data, _, err := s2.Reveal("a", 0)
			if !errors.Is(err, store.ErrCorrupt) || data != nil {
				t.Fatalf("tampered %s: got %q, %v", field, data, err)
			}
			if strings.Contains(err.Error(), "canary") {
				t.Fatal("error leaks data")
			}
		})
	}
	t.Run("record moved to another secret", func(t *testing.T) {
		e := newEnv(t)
		s, _ := e.open(t, store.Config{})
		a := mustCreate(t, s, "a", "aaaa")
		b := mustCreate(t, s, "b", "bbbb")
		s.Close()
		var aVersions any
		tamper(t, e.db, a.ID, func(rec map[string]any) { aVersions = rec["versions"] })
		tamper(t, e.db, b.ID, func(rec map[string]any) { rec["versions"] = aVersions })
		s2, _ := e.open(t, store.Config{})
		if data, _, err := s2.Reveal("b", 0); !errors.Is(err, store.ErrCorrupt) {
			t.Fatalf("moved envelope decrypted: %q, %v", data, err)
		}
		if data, _, err := s2.Reveal("a", 0); err != nil || string(data) != "aaaa" {
			t.Fatalf("untouched record: %q, %v", data, err)
		}
	})
}

func TestKEKRotation(t *testing.T) {
	e := newEnv(t)
	s, _ := e.open(t, store.Config{})
	mustCreate(t, s, "a", "one")
	if _, err := s.Update("a", []byte("two"), 0, nil); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, "b", "three")
	before, _ := os.ReadFile(e.db)
	gen, err := s.RotateKEK(e.keyFile)
	if err != nil || gen != 2 {
		t.Fatalf("rotate: gen %d, %v", gen, err)
	}
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ref  string
		v    int
		want string
	}{{"a", 1, "one"}, {"a", 2, "two"}, {"b", 0, "three"}} {
		if data, _, err := s.Reveal(c.ref, c.v); err != nil || string(data) != c.want {
			t.Fatalf("after rotation %s@%d = %q, %v", c.ref, c.v, data, err)
		}
	}
	s.Close()
	after, _ := os.ReadFile(e.db)
	if bytes.Equal(before, after) {
		t.Fatal("store file unchanged by rotation")
	}
	s2, _ := e.open(t, store.Config{})
	if err := s2.Verify(); err != nil {
		t.Fatalf("after reopen: %v", err)
	}
}

func TestWrongKeyFile(t *testing.T) {
	e := newEnv(t)
	s, _ := e.open(t, store.Config{})
	mustCreate(t, s, "a", "x")
	s.Close()
	before, _ := os.ReadFile(e.db)

	other := filepath.Join(e.dir, "other")
	os.WriteFile(other, bytes.Repeat([]byte{7}, 32), 0o600)
	short := filepath.Join(e.dir, "short")
	os.WriteFile(short, []byte("nope"), 0o600)
	open := filepath.Join(e.dir, "open")
	os.WriteFile(open, bytes.Repeat([]byte{7}, 32), 0o644)
	for _, c := range []struct{ file, msg string }{
		{other, "wrong key file"},
		{short, "is 4 bytes, want 32"},
		{open, "must not be readable by group or others"},
		{filepath.Join(e.dir, "missing"), "no such file"},
	} {
		b, err := bolt.Open(e.db)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = store.Open(b, store.Config{KeyFile: c.file})
		b.Close()
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("key file %s: got %v, want %q", c.file, err, c.msg)
		}
	}
	if _, err := os.Stat(filepath.Join(e.dir, "missing")); !os.IsNotExist(err) {
		t.Error("opening an existing store created a key file")
	}
	after, _ := os.ReadFile(e.db)
	if !bytes.Equal(before, after) {
		t.Fatal("a wrong key changed the store file")
	}
}

func TestAutolock(t *testing.T) {
	e := newEnv(t)
	s, key := e.open(t, store.Config{Autolock: true})
	if !strings.HasPrefix(key, "SECDKEY-1-") || s.Locked() {
		t.Fatalf("new autolocked store: key %q locked %v", key, s.Locked())
	}
	if _, err := os.Stat(e.keyFile); !os.IsNotExist(err) {
		t.Fatal("autolock wrote a key file")
	}
	mustCreate(t, s, "a", "locked-data")
	s.Close()

	s, again := e.open(t, store.Config{Autolock: true})
	if again != "" || !s.Locked() {
		t.Fatal("reopened autolocked store is not locked")
	}
	if _, _, err := s.Reveal("a", 0); !errors.Is(err, store.ErrLocked) || err.Error() != "secretd is locked: run 'secretd unlock'" {
		t.Fatalf("reveal while locked: %v", err)
	}
	if _, err := s.Create(store.Spec{Name: "b", Data: []byte("x")}); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("create while locked: %v", err)
	}
	if list, err := s.List(store.Filter{}); err != nil || len(list) != 1 {
		t.Fatalf("metadata while locked: %v %v", list, err)
	}
	wrong := "SECDKEY-1-" + strings.Repeat("A", 43)
	for _, bad := range []string{"", "garbage", wrong} {
		if err := s.Unlock(bad); !errors.Is(err, store.ErrBadKey) || !s.Locked() {
			t.Fatalf("unlock with %q: %v", bad, err)
		}
	}
	if err := s.Unlock(key + "\n"); err != nil {
		t.Fatal(err)
	}
	if data, _, err := s.Reveal("a", 0); err != nil || string(data) != "locked-data" {
		t.Fatalf("after unlock: %q %v", data, err)
	}
	newKey, err := s.RotateUnlockKey()
	if err != nil || newKey == key {
		t.Fatalf("rotate unlock key: %v", err)
	}
	if shown, _ := s.UnlockKey(); shown != newKey {
		t.Fatal("UnlockKey does not show the rotated key")
	}
	if _, err := s.RotateKEK(""); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, _ = e.open(t, store.Config{Autolock: true})
	if err := s.Unlock(key); !errors.Is(err, store.ErrBadKey) {
		t.Fatalf("old unlock key still works: %v", err)
	}
	if err := s.Unlock(newKey); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
	b, _ := bolt.Open(filepath.Join(t.TempDir(), "x.db"))
	defer b.Close()
	if _, _, err := store.Open(b, store.Config{KeyFile: e.keyFile}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	b2, _ := bolt.Open(e.db)
	defer b2.Close()
	if _, _, err := store.Open(b2, store.Config{KeyFile: e.keyFile}); err == nil || !strings.Contains(err.Error(), "--autolock") {
		t.Fatalf("autolocked store opened without --autolock: %v", err)
	}
}

func TestVersionsAndFilters(t *testing.T) {
	s, _ := newEnv(t).open(t, store.Config{})
	mustCreate(t, s, "app-db", "v1")
	s.Create(store.Spec{Name: "app-key", Data: []byte("k"), Labels: map[string]string{"env": "prod", "team": "x"}})
	mustCreate(t, s, "other", "o")
	for i := 2; i <= 7; i++ {
		if _, err := s.Update("app-db", []byte{'v', byte('0' + i)}, 3, nil); err != nil {
			t.Fatal(err)
		}
	}
	sec, _ := s.Get("app-db")
	if sec.Current != 7 || len(sec.Versions) != 3 || sec.Versions[0].Version != 5 {
		t.Fatalf("versions: %+v", sec)
	}
	if _, _, err := s.Reveal("app-db", 2); !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), "kept: 5, 6, 7") {
		t.Fatalf("dropped version: %v", err)
	}
	names := func(f store.Filter) string {
		l, err := s.List(f)
		if err != nil {
			t.Fatal(err)
		}
		var n []string
		for _, x := range l {
			n = append(n, x.Name)
		}
		return strings.Join(n, ",")
	}
	for _, c := range []struct {
		f    store.Filter
		want string
	}{
		{store.Filter{}, "app-db,app-key,other"},
		{store.Filter{NamePrefixes: []string{"app"}}, "app-db,app-key"},
		{store.Filter{Names: []string{"app"}}, ""},
		{store.Filter{Labels: []string{"env"}}, "app-key"},
		{store.Filter{Labels: []string{"env=dev"}}, ""},
		{store.Filter{Labels: []string{"env=prod", "team"}}, "app-key"},
		{store.Filter{IDPrefixes: []string{sec.ID[:8]}}, "app-db"},
	} {
		if got := names(c.f); got != c.want {
			t.Errorf("filter %+v: got %q want %q", c.f, got, c.want)
		}
	}
	inUse := errors.New("in use by web")
	if _, err := s.Remove("other", func(store.Secret) error { return inUse }); err != inUse {
		t.Fatalf("guard ignored: %v", err)
	}
	if _, err := s.Remove("other", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("other"); !errors.Is(err, store.ErrNotFound) || err.Error() != "secret 'other' not found" {
		t.Fatalf("after rm: %v", err)
	}
	if _, err := s.Create(store.Spec{Name: "other", Data: []byte("again")}); err != nil {
		t.Fatalf("name not freed by rm: %v", err)
	}
}

func TestPinnedVersionsOutliveKeep(t *testing.T) {
	s, _ := newEnv(t).open(t, store.Config{})
	mustCreate(t, s, "a", "v1")
	pin2 := func(store.Secret) ([]int, error) { return []int{2}, nil }
	for i := 2; i <= 6; i++ {
		if _, err := s.Update("a", []byte{'v', byte('0' + i)}, 2, pin2); err != nil {
			t.Fatal(err)
		}
	}
	sec, _ := s.Get("a")
	var kept []int
	for _, v := range sec.Versions {
		kept = append(kept, v.Version)
	}
	if fmt.Sprint(kept) != "[2 5 6]" {
		t.Fatalf("kept %v, want [2 5 6]: version 2 is pinned", kept)
	}
	if data, _, err := s.Reveal("a", 2); err != nil || string(data) != "v2" {
		t.Fatalf("pinned version: %q %v", data, err)
	}
	refuse := errors.New("pinned by web")
	if _, err := s.RemoveVersion("a", 2, func(store.Secret) error { return refuse }); err != refuse {
		t.Fatalf("guard ignored: %v", err)
	}
	if _, err := s.RemoveVersion("a", 6, nil); !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), "current version") {
		t.Fatalf("removing the current version: %v", err)
	}
	if _, err := s.RemoveVersion("a", 3, nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("removing a dropped version: %v", err)
	}
	sec, err := s.RemoveVersion("a", 2, nil)
	if err != nil || sec.HasVersion(2) || !sec.HasVersion(5) {
		t.Fatalf("remove version 2: %+v %v", sec, err)
	}
	var seen []string
	s.OnUpdate(func(sec store.Secret) {
		// The hooks read the version they announce without a read of
		// the backend; a version other than the announced one is not
		// given.
		d, ok := s.Announced(sec)
		older := sec
		older.Current--
		_, stale := s.Announced(older)
		seen = append(seen, fmt.Sprintf("%d %s %v %v", sec.Current, d, ok, stale))
	})
	s.Update("a", []byte("v7"), 0, nil)
	if fmt.Sprint(seen) != "[7 v7 true false]" {
		t.Fatalf("OnUpdate saw %v", seen)
	}
	if d, ok := s.Announced(store.Secret{Kind: store.KindSecret, ID: secretID(t, s, "a"), Name: "a", Current: 7}); ok {
		t.Fatalf("Announced outside the hooks gave %q", d)
	}
}

func secretID(t *testing.T, s *store.Store, name string) string {
	t.Helper()
	sec, err := s.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	return sec.ID
}

// TestListFollowsEveryChange: List reuses what it decoded before, yet
// shows every rotation and removal, and what a caller does to a listed
// secret does not reach the next listing.
func TestListFollowsEveryChange(t *testing.T) {
	s, _ := newEnv(t).open(t, store.Config{})
	if _, err := s.Create(store.Spec{Name: "a", Data: []byte("1"), Labels: map[string]string{"env": "prod"}}); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, "b", "1")
	list := func() []store.Secret {
		t.Helper()
		l, err := s.List(store.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	first := list()
	first[0].Labels["env"] = "changed by a caller"
	first[0].Versions[0].Version = 99
	if l := list(); l[0].Labels["env"] != "prod" || l[0].Versions[0].Version != 1 {
		t.Fatalf("a caller's change reached the next listing: %+v", l[0])
	}
	if _, err := s.Update("a", []byte("2"), 0, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Remove("b", nil); err != nil {
		t.Fatal(err)
	}
	l := list()
	if len(l) != 1 || l[0].Name != "a" || l[0].Current != 2 || len(l[0].Versions) != 2 {
		t.Fatalf("after an update and a removal: %+v", l)
	}
	if l, _ := s.List(store.Filter{Labels: []string{"env=prod"}}); len(l) != 1 {
		t.Fatalf("label filter on a cached record: %+v", l)
	}
}

// TestGetNames: exact names only, in order, each at its current index; a
// name that is some secret's ID, or of the other kind, is not found.
func TestGetNames(t *testing.T) {
	s, _ := newEnv(t).open(t, store.Config{})
	a, b := mustCreate(t, s, "a", "one"), mustCreate(t, s, "b", "two")
	if _, err := s.Configs().Create(store.Spec{Name: "c", Data: []byte("conf")}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetNames([]string{"b", "a"})
	if err != nil || len(got) != 2 || got[0].ID != b.ID || got[1].ID != a.ID || got[1].Index != a.Index {
		t.Fatalf("GetNames(b, a) = %+v, %v", got, err)
	}
	a2, err := s.Update("a", []byte("one again"), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetNames([]string{"a"}); len(got) != 1 || got[0].Index != a2.Index || got[0].Index == a.Index || got[0].Current != 2 {
		t.Errorf("after an update: %+v, want index %d, version 2", got, a2.Index)
	}
	for _, names := range [][]string{{"a", "nope"}, {a.ID}, {"c"}} {
		if got, err := s.GetNames(names); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetNames(%v) = %+v, %v, want not found", names, got, err)
		}
	}
	if got, err := s.Configs().GetNames([]string{"c"}); err != nil || len(got) != 1 || got[0].Name != "c" {
		t.Errorf("configs' GetNames(c) = %+v, %v", got, err)
	}
}

// TestGetNamesAuthenticates: GetNames reads through List's cache, yet a
// record altered in the store is refused, every time it is asked for,
// and the others are still read.
func TestGetNamesAuthenticates(t *testing.T) {
	e := newEnv(t)
	s, _ := e.open(t, store.Config{})
	a := mustCreate(t, s, "a", "one")
	mustCreate(t, s, "b", "two")
	if _, err := s.GetNames([]string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	tamper(t, e.db, a.ID, func(rec map[string]any) { rec["index"] = rec["index"].(float64) + 100 })
	s2, _ := e.open(t, store.Config{})
	for range 2 { // neither read nor cached
		if got, err := s2.GetNames([]string{"b", "a"}); !errors.Is(err, store.ErrCorrupt) {
			t.Fatalf("GetNames of a tampered record: %+v, %v, want corrupt", got, err)
		}
	}
	if got, err := s2.GetNames([]string{"b"}); err != nil || got[0].Name != "b" {
		t.Errorf("GetNames(b) = %+v, %v", got, err)
	}
}
