package store

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/secretd/secretd/internal/store/envelope"
)

// The records FuzzRecord plays with. The KEK is fixed so that the valid
// records in testdata/fuzz/FuzzRecord, sealed once with it, stay valid.
const (
	fuzzVictimID = "fuzzvictim000000000000001"
	fuzzOtherID  = "fuzzother0000000000000002"
)

var fuzzKEK = bytes.Repeat([]byte{0x42}, envelope.KeySize)

// fuzzSealed is every (ID, name, version) the fuzz target ever sealed, with
// its plaintext: the only data a store may return. The fuzzer cannot forge
// an AEAD, so anything else coming out of Reveal is a record accepted for a
// secret it was not sealed for.
var fuzzSealed = map[string]string{
	string(aad("", fuzzVictimID, "victim", 1)): "victim-v1",
	string(aad("", fuzzVictimID, "victim", 2)): "victim-v2",
	string(aad("", fuzzOtherID, "other", 1)):   "other-v1",
}

// FuzzRecord stores arbitrary bytes as the "secrets" record of one secret
// (named victim) next to a valid one (named other) and drives the store's
// read and write paths over it: nothing panics, errors are ErrCorrupt or
// ErrNotFound, and data comes out only for a record that is a valid
// encryption of its own ID, name and version.
func FuzzRecord(f *testing.F) {
	kek := fuzzKey(f)
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	victim := fuzzRecord(f, kek, fuzzVictimID, "victim", now, 1, 2)
	other := fuzzRecord(f, kek, fuzzOtherID, "other", now, 1)
	f.Add(victim)
	f.Add(other)
	f.Add(victim[:len(victim)/2])
	f.Add([]byte(`{"id":"` + fuzzVictimID + `","name":"victim","versions":[]}`))
	f.Add([]byte(`{"id":"` + fuzzVictimID + `","name":"victim","versions":[{"version":1,"envelope":{"key":"","data":""}}]}`))
	f.Add([]byte(`{"id":5,"name":["victim"],"versions":"1"}`))
	f.Add([]byte(`null`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, value []byte) {
		k, err := envelope.KeyFromBytes(fuzzKEK)
		if err != nil {
			t.Fatal(err)
		}
		b := newMemBackend()
		b.put("secrets", fuzzVictimID, value)
		b.put("names", "victim", []byte(fuzzVictimID))
		b.put("secrets", fuzzOtherID, other)
		b.put("names", "other", []byte(fuzzOtherID))
		b.put("meta", "index", []byte("7"))
		unlock := bytes.Repeat([]byte{0x24}, envelope.KeySize)
		rec, err := wrapKEK(unlock, modeAutolock, 1, 0, k)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Update(func(tx Tx) error { return putKEKRecord(tx, rec) }); err != nil {
			t.Fatal(err)
		}
		s := &Store{kind: KindSecret, core: &core{b: b, mode: modeAutolock, unlockKey: unlock, now: func() time.Time { return now }, list: newListCache(), hw: &highWater{seen: map[string]int{}}, macOn: true}}
		if err := s.setKEK(k); err != nil {
			t.Fatal(err)
		}
		sealed := maps.Clone(fuzzSealed)

		checkReads(t, s, sealed)

		// The write paths refuse a bad record without panicking; what they
		// accept must read back.
		if sec, err := s.Update("victim", []byte("fresh"), 0, nil); err == nil {
			sealed[string(aad("", sec.ID, sec.Name, sec.Current))] = "fresh"
			data, got, err := s.Reveal("victim", 0)
			if err != nil || string(data) != "fresh" || got.Current != sec.Current {
				t.Fatalf("after an accepted update, reveal gives %q version %d, %v", data, got.Current, err)
			}
		} else {
			checkKind(t, "update", err)
		}
		if _, err := s.RemoveVersion("victim", 1, nil); err != nil && !errors.Is(err, ErrInvalid) {
			checkKind(t, "remove version", err)
		}
		if _, err := s.RotateKEK(""); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("rotate KEK: %v, want success or ErrCorrupt", err)
		}
		checkReads(t, s, sealed)
		// A bad neighbour never costs the valid secret its data.
		if data, _, err := s.Reveal("other", 0); err != nil || string(data) != "other-v1" {
			t.Fatalf("the valid secret next to the fuzzed record reveals %q, %v", data, err)
		}
		if _, err := s.Remove("victim", nil); err != nil {
			checkKind(t, "remove", err)
		}
	})
}

// checkReads runs every read path over the store.
func checkReads(t *testing.T, s *Store, sealed map[string]string) {
	t.Helper()
	for _, ref := range []string{fuzzVictimID, "victim", fuzzVictimID[:6]} {
		if _, err := s.Get(ref); err != nil {
			checkKind(t, "get "+ref, err)
		}
		for _, v := range []int{0, 1, 2, 3} {
			data, sec, err := s.Reveal(ref, v)
			if err != nil {
				checkKind(t, "reveal "+ref, err)
				if data != nil {
					t.Fatalf("reveal %s@%d failed (%v) but returned data", ref, v, err)
				}
				continue
			}
			checkSealed(t, sealed, sec, v, data)
		}
		data, sec, err := s.RevealName(ref, 0)
		if err != nil {
			checkKind(t, "reveal name "+ref, err)
		} else {
			checkSealed(t, sealed, sec, 0, data)
		}
	}
	list, err := s.List(Filter{})
	if err != nil && !errors.Is(err, ErrCorrupt) {
		t.Fatalf("list: %v, want success or ErrCorrupt", err)
	}
	for _, sec := range list {
		if sec.Current != 0 && !sec.HasVersion(sec.Current) {
			t.Fatalf("list: secret %s current version %d is not among its versions", sec.Name, sec.Current)
		}
	}
	s.Verify() // must not panic; its errors are per secret
}

// checkSealed fails unless data is what was sealed for exactly the ID, name
// and version it was revealed as.
func checkSealed(t *testing.T, sealed map[string]string, sec Secret, v int, data []byte) {
	t.Helper()
	if v == 0 {
		v = sec.Current
	}
	want, ok := sealed[string(aad("", sec.ID, sec.Name, v))]
	if !ok {
		t.Fatalf("reveal returned %q as secret %s (%s) version %d, which nothing was sealed for", data, sec.Name, sec.ID, v)
	}
	if string(data) != want {
		t.Fatalf("reveal returned %q as secret %s version %d, sealed was %q", data, sec.Name, v, want)
	}
}

func checkKind(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNotFound) {
		t.Fatalf("%s: %v (%T), want ErrCorrupt or ErrNotFound", what, err, err)
	}
}

func fuzzKey(tb testing.TB) *envelope.Key {
	k, err := envelope.KeyFromBytes(fuzzKEK)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// fuzzRecord returns a valid stored record whose versions hold the
// plaintexts of fuzzSealed.
func fuzzRecord(tb testing.TB, kek *envelope.Key, id, name string, now time.Time, versions ...int) []byte {
	r := record{ID: id, Name: name, Labels: map[string]string{"env": "fuzz"}, CreatedAt: now, UpdatedAt: now, Index: 3}
	for _, v := range versions {
		a := aad("", id, name, v)
		env, err := envelope.SealEnvelope(kek, []byte(fuzzSealed[string(a)]), a)
		if err != nil {
			tb.Fatal(err)
		}
		r.Versions = append(r.Versions, versionRecord{Version: v, CreatedAt: now, Envelope: env})
	}
	tx := &memTx{m: map[string]map[string][]byte{}}
	mk, err := macKeyOf(kek)
	if err != nil {
		tb.Fatal(err)
	}
	if err := putRecord(tx, &r, mk); err != nil {
		tb.Fatal(err)
	}
	return tx.m["secrets"][id]
}

// memBackend is an in-memory Backend with bbolt's transaction semantics:
// an Update that fails leaves nothing behind.
type memBackend struct {
	mu sync.Mutex
	m  map[string]map[string][]byte
}

func newMemBackend() *memBackend {
	b := &memBackend{m: map[string]map[string][]byte{}}
	for _, name := range []string{"meta", "secrets", "names"} {
		b.m[name] = map[string][]byte{}
	}
	return b
}

func (b *memBackend) put(bucket, key string, v []byte) {
	b.m[bucket][key] = slices.Clone(v)
}

func (b *memBackend) View(fn func(Tx) error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return fn(&memTx{m: b.m, ro: true})
}

func (b *memBackend) Update(fn func(Tx) error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	next := map[string]map[string][]byte{}
	for k, v := range b.m {
		next[k] = maps.Clone(v)
	}
	if err := fn(&memTx{m: next}); err != nil {
		return err
	}
	b.m = next
	return nil
}

func (b *memBackend) Close() error { return nil }

type memTx struct {
	m  map[string]map[string][]byte
	ro bool
}

var errReadOnly = errors.New("write in a read-only transaction")

func (t *memTx) Get(bucket, key string) ([]byte, error) {
	v, ok := t.m[bucket][key]
	if !ok {
		return nil, nil
	}
	return slices.Clone(v), nil
}

func (t *memTx) Put(bucket, key string, value []byte) error {
	if t.ro {
		return errReadOnly
	}
	if t.m[bucket] == nil {
		t.m[bucket] = map[string][]byte{}
	}
	t.m[bucket][key] = slices.Clone(value)
	return nil
}

func (t *memTx) Delete(bucket, key string) error {
	if t.ro {
		return errReadOnly
	}
	delete(t.m[bucket], key)
	return nil
}

func (t *memTx) ForEach(bucket string, fn func(string, []byte) error) error {
	for _, k := range slices.Sorted(maps.Keys(t.m[bucket])) {
		if err := fn(k, slices.Clone(t.m[bucket][k])); err != nil {
			return err
		}
	}
	return nil
}
