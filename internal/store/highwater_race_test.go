package store

import (
	"errors"
	"path/filepath"
	"testing"
)

// snapshotBackend is memBackend with etcd's and bbolt's read isolation: a
// View reads the state as of its start while writes commit beside it.
// beforeRead, when set, runs once inside the next View, after its
// snapshot was taken.
type snapshotBackend struct {
	*memBackend
	beforeRead func()
}

func (b *snapshotBackend) View(fn func(Tx) error) error {
	b.mu.Lock()
	snap := b.m
	b.mu.Unlock()
	if f := b.beforeRead; f != nil {
		b.beforeRead = nil
		f()
	}
	return fn(&memTx{m: snap, ro: true})
}

// A read whose transaction began before this host wrote a newer version
// holds the version it read, which was current then: it is no rollback.
// (Seen as a false "rolled back" under concurrent updates on etcd.) A
// record put back later is still refused.
func TestReadOverlappingOwnWriteIsNoRollback(t *testing.T) {
	dir := t.TempDir()
	b := &snapshotBackend{memBackend: newMemBackend()}
	var events []RollbackEvent
	s, _, err := Open(b, Config{KeyFile: filepath.Join(dir, "key"), HighWaterFile: filepath.Join(dir, "versions.json"),
		OnRollback: func(ev RollbackEvent) { events = append(events, ev) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sec, err := s.Create(Spec{Name: "counter", Data: []byte("v1")})
	if err != nil {
		t.Fatal(err)
	}
	old := b.m["secrets"][sec.ID]
	b.beforeRead = func() {
		if _, err := s.Update("counter", []byte("v2"), 0, nil); err != nil {
			t.Errorf("update during the read: %v", err)
		}
	}
	data, got, err := s.RevealName("counter", 0)
	if err != nil || string(data) != "v1" || got.Current != 1 {
		t.Fatalf("read that began before the update: %q version %d, %v; want v1 at version 1 (current when read)", data, got.Current, err)
	}
	if data, _, err := s.RevealName("counter", 0); err != nil || string(data) != "v2" {
		t.Fatalf("read after the update: %q, %v; want v2", data, err)
	}
	if len(events) != 0 {
		t.Fatalf("rollback events: %+v, want none", events)
	}

	b.mu.Lock()
	b.m["secrets"][sec.ID] = old
	b.mu.Unlock()
	if _, _, err := s.RevealName("counter", 0); !errors.Is(err, ErrRollback) {
		t.Fatalf("record put back at version 1: %v, want ErrRollback", err)
	}
	if len(events) != 1 {
		t.Fatalf("rollback events: %+v, want one", events)
	}
}
