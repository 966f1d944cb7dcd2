package etcd_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/secretd/secretd/internal/store"
)

// TestWatchIgnoresForgedRecords: whoever can write etcd but holds no key
// cannot make a host act on a record of their own making: a record with a
// new version list and a MAC that does not verify, or with its MAC
// stripped, announces nothing (no rotation is started, no failure
// recorded). The next real update is announced as usual.
func TestWatchIgnoresForgedRecords(t *testing.T) {
	c := cluster(t)
	prefix := newPrefix()
	b1 := open(t, c, prefix)
	key := filepath.Join(t.TempDir(), "key")
	s1 := openStore(t, b1, key)
	s2 := openStore(t, open(t, c, prefix), key)
	raw := open(t, c, prefix)
	defer raw.Close()
	sec, err := s1.Create(store.Spec{Name: "s", Data: []byte("1")})
	if err != nil {
		t.Fatal(err)
	}
	var orig []byte
	if err := raw.View(func(tx store.Tx) (err error) { orig, err = tx.Get("secrets", sec.ID); return err }); err != nil {
		t.Fatal(err)
	}
	got := make(chan store.Secret, 16)
	s2.OnUpdate(func(sec store.Secret) { got <- sec })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s2.Watch(ctx, nil)
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the watch did not announce the existing secret")
	}

	forge := func(what string, edit func(rec map[string]any)) {
		t.Helper()
		if err := raw.Update(func(tx store.Tx) error {
			v, err := tx.Get("secrets", sec.ID)
			if err != nil {
				return err
			}
			var rec map[string]any
			if err := json.Unmarshal(v, &rec); err != nil {
				return err
			}
			versions := rec["versions"].([]any)
			next := map[string]any{}
			for k, v := range versions[len(versions)-1].(map[string]any) {
				next[k] = v
			}
			next["version"] = float64(len(versions) + 1)
			rec["versions"] = append(versions, next)
			edit(rec)
			b, err := json.Marshal(rec)
			if err != nil {
				return err
			}
			return tx.Put("secrets", sec.ID, b)
		}); err != nil {
			t.Fatal(err)
		}
		select {
		case s := <-got:
			t.Errorf("%s: the watch announced %s version %d", what, s.Name, s.Current)
		case <-time.After(500 * time.Millisecond):
		}
	}
	forge("a new version under the old MAC", func(map[string]any) {})
	forge("a new version with its MAC stripped", func(rec map[string]any) { delete(rec, "mac") })

	// Put the real record back: the next real update is announced.
	if err := raw.Update(func(tx store.Tx) error { return tx.Put("secrets", sec.ID, orig) }); err != nil {
		t.Fatal(err)
	}
	if _, err := s1.Update("s", []byte("2"), 0, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s.Current != 2 {
			t.Errorf("announced version %d, want 2", s.Current)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a real update was not announced")
	}
}
