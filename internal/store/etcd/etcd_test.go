package etcd_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/secretd/secretd/internal/store"
	"github.com/secretd/secretd/internal/store/bolt"
	"github.com/secretd/secretd/internal/store/etcd"
	"github.com/secretd/secretd/internal/store/etcd/etcdtest"
	"github.com/secretd/secretd/internal/store/storetest"
)

// one single-member cluster serves every test that does not stop members;
// each test works under a prefix of its own.
var (
	sharedOnce sync.Once
	shared     *etcdtest.Cluster
	prefixes   atomic.Int64
)

func cluster(t *testing.T) *etcdtest.Cluster {
	sharedOnce.Do(func() { shared = etcdtest.Start(&noCleanup{T: t}, 1) })
	if shared == nil {
		t.Fatal("the shared etcd cluster did not start")
	}
	return shared
}

// sharedCleanups stop the shared cluster after the last test.
var sharedCleanups []func()

func TestMain(m *testing.M) {
	code := m.Run()
	for i := len(sharedCleanups) - 1; i >= 0; i-- {
		sharedCleanups[i]()
	}
	os.Exit(code)
}

// noCleanup lets the shared cluster outlive the test that started it:
// TestMain stops it. Failures are the tests' own to report.
type noCleanup struct{ *testing.T }

func (n *noCleanup) Cleanup(f func()) { sharedCleanups = append(sharedCleanups, f) }
func (n *noCleanup) Failed() bool     { return false }

func newPrefix() string { return fmt.Sprintf("/test-%d/", prefixes.Add(1)) }

func open(t *testing.T, c *etcdtest.Cluster, prefix string) *etcd.Backend {
	t.Helper()
	b, err := etcd.Open(etcd.Options{Endpoints: c.Endpoints(), Prefix: prefix, Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// twoHosts opens one store on c twice, under a fresh prefix, with one key
// file: two hosts sharing it.
func twoHosts(t *testing.T, c *etcdtest.Cluster) (*store.Store, *store.Store) {
	t.Helper()
	prefix := newPrefix()
	key := filepath.Join(t.TempDir(), "key")
	return openStore(t, open(t, c, prefix), key), openStore(t, open(t, c, prefix), key)
}

func openStore(t *testing.T, b store.Backend, keyFile string) *store.Store {
	t.Helper()
	s, _, err := store.Open(b, store.Config{KeyFile: keyFile})
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestContract(t *testing.T) {
	c := cluster(t)
	storetest.Contract(t, func(t *testing.T) store.Backend { return open(t, c, newPrefix()) })
}

func TestKinds(t *testing.T) {
	c := cluster(t)
	storetest.Kinds(t, func(t *testing.T) store.Backend { return open(t, c, newPrefix()) })
}

// TestUpdateRetriesOnConflict: a write by another host between an update's
// reads and its commit makes the update run again on fresh reads, for a
// key it read and for a bucket it iterated (a deletion included).
func TestUpdateRetriesOnConflict(t *testing.T) {
	c := cluster(t)
	prefix := newPrefix()
	b1, b2 := open(t, c, prefix), open(t, c, prefix)
	defer b1.Close()
	defer b2.Close()
	if err := b1.Update(func(tx store.Tx) error {
		tx.Put("names", "a", []byte("1"))
		return tx.Put("names", "b", []byte("1"))
	}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		read  func(tx store.Tx) error
		other func(tx store.Tx) error
	}{
		{"read key changed", func(tx store.Tx) error { _, err := tx.Get("names", "a"); return err },
			func(tx store.Tx) error { return tx.Put("names", "a", []byte("2")) }},
		{"absent key created", func(tx store.Tx) error { _, err := tx.Get("names", "new"); return err },
			func(tx store.Tx) error { return tx.Put("names", "new", []byte("x")) }},
		{"iterated bucket grew", func(tx store.Tx) error { return tx.ForEach("names", func(string, []byte) error { return nil }) },
			func(tx store.Tx) error { return tx.Put("names", "c", []byte("x")) }},
		{"iterated bucket lost a key", func(tx store.Tx) error { return tx.ForEach("names", func(string, []byte) error { return nil }) },
			func(tx store.Tx) error { return tx.Delete("names", "b") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runs := 0
			err := b1.Update(func(tx store.Tx) error {
				runs++
				if err := tc.read(tx); err != nil {
					return err
				}
				if runs == 1 {
					if err := b2.Update(tc.other); err != nil {
						return err
					}
				}
				return tx.Put("meta", "marker", []byte(tc.name))
			})
			if err != nil || runs != 2 {
				t.Fatalf("update ran %d times (%v), want 2: the other host's write was not seen as a conflict", runs, err)
			}
		})
	}
}

// TestUpdateOnOutOfDateKnowledge: a write transaction reads the name
// index and the key record from what this host last saw; when another host
// changed them since, the commit loses and the transaction runs again on
// the cluster's answers, and an error it gave on the old answers (a name
// not found) is asked of the cluster again rather than returned.
func TestUpdateOnOutOfDateKnowledge(t *testing.T) {
	c := cluster(t)
	prefix := newPrefix()
	b1, b2 := open(t, c, prefix), open(t, c, prefix)
	defer b1.Close()
	defer b2.Close()
	read := func(tx store.Tx) ([]byte, error) { return tx.Get("names", "n") }
	// b1 learns that n is absent.
	if err := b1.Update(func(tx store.Tx) error { _, err := read(tx); return err }); err != nil {
		t.Fatal(err)
	}
	if err := b2.Update(func(tx store.Tx) error { return tx.Put("names", "n", []byte("by b2")) }); err != nil {
		t.Fatal(err)
	}
	var seen []string
	err := b1.Update(func(tx store.Tx) error {
		v, err := read(tx)
		if err != nil {
			return err
		}
		seen = append(seen, string(v))
		if v == nil {
			return store.Errorf(store.ErrNotFound, "n not found")
		}
		return tx.Put("names", "n", append(v, " and b1"...))
	})
	if err != nil || fmt.Sprint(seen) != "[ by b2]" {
		t.Fatalf("update saw %q (%v), want the absent name then b2's", seen, err)
	}
	// b1 knows its own write; b2 changing it again makes b1's next
	// write lose once, then commit on top of it.
	if err := b2.Update(func(tx store.Tx) error { return tx.Put("names", "n", []byte("b2 again")) }); err != nil {
		t.Fatal(err)
	}
	seen = nil
	if err := b1.Update(func(tx store.Tx) error {
		v, err := read(tx)
		seen = append(seen, string(v))
		if err != nil {
			return err
		}
		return tx.Put("names", "n", append(v, " then b1"...))
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seen) != "[by b2 and b1 b2 again]" {
		t.Fatalf("update saw %q, want its own write then b2's", seen)
	}
	var got []byte
	b2.View(func(tx store.Tx) (err error) { got, err = read(tx); return err })
	if string(got) != "b2 again then b1" {
		t.Fatalf("stored %q", got)
	}
}

// TestNameMadeAgainElsewhere: a host fetches a name's record with the name
// index, guessing the record from what the name pointed at before; a name
// another host removed and made again resolves to the new secret.
func TestNameMadeAgainElsewhere(t *testing.T) {
	s1, s2 := twoHosts(t, cluster(t))
	old, err := s1.Create(store.Spec{Name: "n", Data: []byte("old")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s1.Update("n", []byte("old 2"), 0, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Remove("n", nil); err != nil {
		t.Fatal(err)
	}
	made, err := s2.Create(store.Spec{Name: "n", Data: []byte("new")})
	if err != nil {
		t.Fatal(err)
	}
	if sec, err := s1.Get("n"); err != nil || sec.ID != made.ID || sec.ID == old.ID {
		t.Fatalf("get: %s %v, want %s", sec.ID, err, made.ID)
	}
	if d, _, err := s1.RevealName("n", 0); err != nil || string(d) != "new" {
		t.Fatalf("reveal: %q %v", d, err)
	}
	if sec, err := s1.Update("n", []byte("new 2"), 0, nil); err != nil || sec.ID != made.ID || sec.Current != 2 {
		t.Fatalf("update: %+v %v", sec, err)
	}
}

// TestConcurrentUpdatesLoseNone: two hosts update one secret 50 times each,
// all at once; every update lands as its own version and every version
// decrypts to what was written.
func TestConcurrentUpdatesLoseNone(t *testing.T) {
	s1, s2 := twoHosts(t, cluster(t))
	sec, err := s1.Create(store.Spec{Name: "counter", Data: []byte("v0")})
	if err != nil {
		t.Fatal(err)
	}
	const each = 50
	var wg sync.WaitGroup
	errs := make(chan error, 2*each)
	for h, s := range []*store.Store{s1, s2} {
		for i := range each {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.Update("counter", fmt.Appendf(nil, "h%d-%d", h, i), 1000, nil); err != nil {
					errs <- err
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("update: %v", err)
	}
	got, err := s2.Get("counter")
	if err != nil {
		t.Fatal(err)
	}
	if got.Current != 2*each+1 || len(got.Versions) != 2*each+1 {
		t.Fatalf("after %d updates the secret is at version %d with %d versions, want %d: updates were lost", 2*each, got.Current, len(got.Versions), 2*each+1)
	}
	var seen []string
	for _, v := range got.Versions {
		data, _, err := s1.Reveal(sec.ID, v.Version)
		if err != nil {
			t.Fatalf("version %d: %v", v.Version, err)
		}
		seen = append(seen, string(data))
	}
	slices.Sort(seen)
	if n := len(slices.Compact(seen)); n != 2*each+1 {
		t.Fatalf("%d distinct contents over %d versions: an update overwrote another", n, 2*each+1)
	}
}

// TestWatchSeesOtherHosts: a store that watches runs its update hooks for
// a version another host wrote.
func TestWatchSeesOtherHosts(t *testing.T) {
	s1, s2 := twoHosts(t, cluster(t))
	if !s2.Shared() {
		t.Fatal("an etcd store does not say it is shared")
	}
	if _, err := s1.Create(store.Spec{Name: "s", Data: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	got := make(chan store.Secret, 16)
	values := make(chan string, 16)
	s2.OnUpdate(func(sec store.Secret) {
		// The hooks read the announced version from the watch's record.
		d, ok := s2.Announced(sec)
		values <- fmt.Sprintf("%s %v", d, ok)
		got <- sec
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s2.Watch(ctx, nil)
	// The watch announces what it finds first.
	select {
	case sec := <-got:
		if sec.Name != "s" || sec.Current != 1 {
			t.Fatalf("first announcement: %s version %d", sec.Name, sec.Current)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the watch did not announce the existing secret")
	}
	start := time.Now()
	if _, err := s1.Update("s", []byte("2"), 0, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case sec := <-got:
		if sec.Current != 2 {
			t.Fatalf("announced version %d, want 2", sec.Current)
		}
		t.Logf("another host's update announced after %s", time.Since(start))
		<-values // the first announcement's
		if v := <-values; v != "2 true" {
			t.Fatalf("the hook read %q of the announced version, want 2", v)
		}
		// Only the hooks read it: afterwards the store answers.
		if d, ok := s2.Announced(sec); ok {
			t.Fatalf("Announced outside the hooks gave %q", d)
		}
	case <-time.After(time.Second):
		t.Fatal("another host's update was not announced within 1s")
	}
	// A rewrite that keeps the current version (a removed old version)
	// announces nothing.
	if _, err := s1.RemoveVersion("s", 1, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case sec := <-got:
		t.Fatalf("announced %s version %d again", sec.Name, sec.Current)
	case <-time.After(300 * time.Millisecond):
	}
}

// TestClaimsExpireWithLease: claims are seen by every host while their
// host keeps its lease, and vanish when it stops doing so.
func TestClaimsExpireWithLease(t *testing.T) {
	c := cluster(t)
	prefix := newPrefix()
	b1, b2 := open(t, c, prefix), open(t, c, prefix)
	defer b1.Close()
	defer b2.Close()
	c1, err := b1.Claims("h1", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := b2.Claims("h2", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx1, kill1 := context.WithCancel(context.Background())
	defer kill1()
	ctx2, stop2 := context.WithCancel(context.Background())
	defer stop2()
	go c1.Run(ctx1, nil)
	go c2.Run(ctx2, nil)
	c1.Set(map[string][]byte{"ctr-a": []byte("A"), "ctr-b": []byte("B")})
	c2.Set(map[string][]byte{"ctr-c": []byte("C")})
	list := func() map[string]map[string][]byte {
		t.Helper()
		all, err := c2.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return all
	}
	waitFor(t, 5*time.Second, "both hosts' claims", func() bool {
		all := list()
		return len(all["h1"]) == 2 && len(all["h2"]) == 1
	})
	c1.Set(map[string][]byte{"ctr-a": []byte("A2")})
	waitFor(t, 5*time.Second, "h1's changed claims", func() bool {
		all := list()
		return len(all["h1"]) == 1 && string(all["h1"]["ctr-a"]) == "A2"
	})
	// h1 dies without a word: its claims go when its lease expires.
	kill1()
	start := time.Now()
	waitFor(t, 10*time.Second, "h1's claims to expire", func() bool { return list()["h1"] == nil })
	t.Logf("claims of a dead host expired after %s (TTL 2s)", time.Since(start))
	if time.Since(start) < time.Second {
		t.Fatal("claims vanished before their lease could expire")
	}
	if all := list(); len(all["h2"]) != 1 {
		t.Fatalf("a living host's claims went too: %v", all)
	}
}

// TestSimultaneousInitialisation: hosts started together on a new shared
// store end up with one KEK between them.
func TestSimultaneousInitialisation(t *testing.T) {
	c := cluster(t)
	prefix := newPrefix()
	key := filepath.Join(t.TempDir(), "key")
	// The key file exists first, as when it was copied to every host.
	first := openStore(t, open(t, c, newPrefix()), key)
	first.Close()
	stores := make([]*store.Store, 4)
	var wg sync.WaitGroup
	for i := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := open(t, c, prefix)
			s, _, err := store.Open(b, store.Config{KeyFile: key})
			if err != nil {
				t.Error(err)
				b.Close()
				return
			}
			stores[i] = s
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, s := range stores {
		defer s.Close()
	}
	if _, err := stores[0].Create(store.Spec{Name: "x", Data: []byte("one kek")}); err != nil {
		t.Fatal(err)
	}
	for i, s := range stores {
		if data, _, err := s.RevealName("x", 0); err != nil || string(data) != "one kek" {
			t.Fatalf("store %d: %q, %v: the hosts hold different KEKs", i, data, err)
		}
	}
}

// TestNoQuorum: with most members down, reads and writes fail quickly with
// ErrUnavailable and a message that says what is wrong; with the members
// back, the same store works again without a restart.
func TestNoQuorum(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-member cluster")
	}
	c := etcdtest.Start(t, 3)
	b := open(t, c, etcd.DefaultPrefix)
	s := openStore(t, b, filepath.Join(t.TempDir(), "key"))
	if _, err := s.Create(store.Spec{Name: "s", Data: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	c.Stop(0)
	if _, err := s.Update("s", []byte("2"), 0, nil); err != nil {
		t.Fatalf("update with one member of three down: %v", err)
	}
	c.Stop(1)
	for _, op := range []struct {
		name string
		do   func() error
	}{
		{"reveal", func() error { _, _, err := s.RevealName("s", 0); return err }},
		{"create", func() error { _, err := s.Create(store.Spec{Name: "t", Data: []byte("1")}); return err }},
		{"update", func() error { _, err := s.Update("s", []byte("3"), 0, nil); return err }},
		{"list", func() error { _, err := s.List(store.Filter{}); return err }},
	} {
		start := time.Now()
		err := op.do()
		took := time.Since(start)
		if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "has no quorum") {
			t.Errorf("%s without quorum: %v; want ErrUnavailable saying the cluster has no quorum", op.name, err)
		}
		if took > 8*time.Second {
			t.Errorf("%s without quorum took %s to fail", op.name, took)
		}
		t.Logf("%s without quorum failed after %s: %v", op.name, took.Round(time.Millisecond), err)
	}
	c.Restart(0)
	c.Restart(1)
	c.Ready(30 * time.Second)
	waitFor(t, 30*time.Second, "the store to answer again", func() bool {
		_, err := s.Update("s", []byte("3"), 0, nil)
		return err == nil
	})
	if data, _, err := s.RevealName("s", 0); err != nil || string(data) != "3" {
		t.Fatalf("after quorum came back: %q, %v", data, err)
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCopyBoltToEtcdAndBack: a migration moves records as ciphertext with
// the key record, so the same key file opens the copy; a target that holds
// anything is refused.
func TestCopyBoltToEtcdAndBack(t *testing.T) {
	c := cluster(t)
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	src, err := bolt.Open(filepath.Join(dir, "src.db"))
	if err != nil {
		t.Fatal(err)
	}
	s := openStore(t, src, key)
	for i := range 150 { // more than one etcd transaction holds
		if _, err := s.Create(store.Spec{Name: fmt.Sprintf("s%03d", i), Data: fmt.Appendf(nil, "data-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Update("s007", []byte("data-7-v2"), 0, nil); err != nil {
		t.Fatal(err)
	}
	mid := open(t, c, newPrefix())
	secrets, keys, err := store.Copy(mid, src)
	if err != nil {
		t.Fatal(err)
	}
	if secrets != 150 || keys != 2+150+150 {
		t.Fatalf("copied %d secrets, %d keys; want 150, 302", secrets, keys)
	}
	if _, _, err := store.Copy(mid, src); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("a second copy into the same target: %v; want refused as not empty", err)
	}
	back, err := bolt.Open(filepath.Join(dir, "back.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.Copy(back, mid); err != nil {
		t.Fatal(err)
	}
	for _, b := range []store.Backend{mid, back} {
		s2 := openStore(t, b, key)
		if data, sec, err := s2.RevealName("s007", 0); err != nil || string(data) != "data-7-v2" || sec.Current != 2 {
			t.Fatalf("after migration: %q version %d, %v", data, sec.Current, err)
		}
		if data, _, err := s2.RevealName("s149", 0); err != nil || string(data) != "data-149" {
			t.Fatalf("after migration: %q, %v", data, err)
		}
		if _, err := s2.Create(store.Spec{Name: "new", Data: []byte("x")}); err != nil {
			t.Fatalf("create in the migrated store: %v", err)
		}
	}
}

// TestKEKRotatedByAnotherHost: after one host rotates the KEK, the others
// take up the new one: they open what it seals, and what they seal, it
// opens; with autolock, a host whose unlock key was rotated elsewhere too
// locks until it is given the new one.
func TestKEKRotatedByAnotherHost(t *testing.T) {
	c := cluster(t)
	t.Run("KeyFile", func(t *testing.T) {
		prefix := newPrefix()
		key := filepath.Join(t.TempDir(), "key")
		s1 := openStore(t, open(t, c, prefix), key)
		s2 := openStore(t, open(t, c, prefix), key)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go s2.Watch(ctx, nil)
		if _, err := s1.Create(store.Spec{Name: "a", Data: []byte("a1")}); err != nil {
			t.Fatal(err)
		}
		for round := 1; round <= 2; round++ {
			if gen, err := s1.RotateKEK(key); err != nil || gen != round+1 {
				t.Fatalf("rotate: generation %d, %v", gen, err)
			}
			if data, _, err := s2.RevealName("a", 0); err != nil || string(data) != "a1" {
				t.Fatalf("round %d: host 2 reads %q, %v after host 1 rotated the KEK", round, data, err)
			}
			name := fmt.Sprintf("b%d", round)
			if _, err := s2.Create(store.Spec{Name: name, Data: []byte("b")}); err != nil {
				t.Fatalf("round %d: host 2 creates: %v", round, err)
			}
			if data, _, err := s1.RevealName(name, 0); err != nil || string(data) != "b" {
				t.Fatalf("round %d: host 1 reads what host 2 sealed: %q, %v", round, data, err)
			}
			s1, s2 = s2, s1 // the other host rotates next
		}
	})
	t.Run("Autolock", func(t *testing.T) {
		prefix := newPrefix()
		b1 := open(t, c, prefix)
		s1, unlock, err := store.Open(b1, store.Config{Autolock: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s1.Close()
		b2 := open(t, c, prefix)
		s2, _, err := store.Open(b2, store.Config{Autolock: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s2.Close()
		if err := s2.Unlock(unlock); err != nil {
			t.Fatal(err)
		}
		if _, err := s1.Create(store.Spec{Name: "a", Data: []byte("a1")}); err != nil {
			t.Fatal(err)
		}
		if _, err := s1.RotateKEK(""); err != nil {
			t.Fatal(err)
		}
		if data, _, err := s2.RevealName("a", 0); err != nil || string(data) != "a1" {
			t.Fatalf("host 2 after a KEK rotation on host 1: %q, %v", data, err)
		}
		newKey, err := s1.RotateUnlockKey()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s1.RotateKEK(""); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s2.RevealName("a", 0); !errors.Is(err, store.ErrLocked) {
			t.Fatalf("host 2 with an unlock key rotated elsewhere: %v, want ErrLocked", err)
		}
		if err := s2.Unlock(newKey); err != nil {
			t.Fatal(err)
		}
		if data, _, err := s2.RevealName("a", 0); err != nil || string(data) != "a1" {
			t.Fatalf("host 2 unlocked with the new key: %q, %v", data, err)
		}
	})
}

// TestListSeesOtherHosts: a host's listing follows what other hosts
// create, rotate, relabel and remove, though it caches what it decoded.
func TestListSeesOtherHosts(t *testing.T) {
	s1, s2 := twoHosts(t, cluster(t))
	listing := func() string {
		t.Helper()
		l, err := s2.List(store.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, s := range l {
			out = append(out, fmt.Sprintf("%s@%d", s.Name, s.Current))
		}
		return strings.Join(out, ",")
	}
	for _, n := range []string{"a", "b"} {
		if _, err := s1.Create(store.Spec{Name: n, Data: []byte("1")}); err != nil {
			t.Fatal(err)
		}
	}
	if got := listing(); got != "a@1,b@1" {
		t.Fatalf("first listing: %s", got)
	}
	if _, err := s1.Update("a", []byte("2"), 0, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s1.Remove("b", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s1.Create(store.Spec{Name: "c", Data: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	if got := listing(); got != "a@2,c@1" {
		t.Fatalf("after another host's update, rm and create: %s, want a@2,c@1", got)
	}
}

// TestWritesAfterKEKRotatedByAnotherHost: every write a host makes right
// after another host rotated the KEK (before its watch could tell it)
// takes up the new KEK and succeeds, and what it wrote is authenticated
// under the new KEK, so the host that rotated reads it.
func TestWritesAfterKEKRotatedByAnotherHost(t *testing.T) {
	c := cluster(t)
	for _, tc := range []struct {
		name  string
		write func(s *store.Store) error
		check func(t *testing.T, s *store.Store)
	}{
		{"UpdateLabels", func(s *store.Store) error {
			_, err := s.UpdateLabels("a", 0, map[string]string{"team": "b"}, nil)
			return err
		}, func(t *testing.T, s *store.Store) {
			if sec, err := s.Get("a"); err != nil || sec.Labels["team"] != "b" {
				t.Fatalf("host A reads the labels host B wrote: %v, %v", sec.Labels, err)
			}
		}},
		{"Update", func(s *store.Store) error {
			_, err := s.Update("a", []byte("a3"), 0, nil)
			return err
		}, func(t *testing.T, s *store.Store) {
			if data, _, err := s.RevealName("a", 0); err != nil || string(data) != "a3" {
				t.Fatalf("host A reads the version host B wrote: %q, %v", data, err)
			}
		}},
		{"RemoveVersion", func(s *store.Store) error {
			_, err := s.RemoveVersion("a", 1, nil)
			return err
		}, func(t *testing.T, s *store.Store) {
			if sec, err := s.Get("a"); err != nil || sec.HasVersion(1) || !sec.HasVersion(2) {
				t.Fatalf("host A after host B removed version 1: %+v, %v", sec.Versions, err)
			}
		}},
		{"Remove", func(s *store.Store) error {
			_, err := s.Remove("a", nil)
			return err
		}, func(t *testing.T, s *store.Store) {
			if _, err := s.Get("a"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("host A after host B removed the secret: %v, want ErrNotFound", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := newPrefix()
			key := filepath.Join(t.TempDir(), "key")
			a := openStore(t, open(t, c, prefix), key)
			b := openStore(t, open(t, c, prefix), key)
			if _, err := a.Create(store.Spec{Name: "a", Data: []byte("a1")}); err != nil {
				t.Fatal(err)
			}
			if _, err := a.Update("a", []byte("a2"), 0, nil); err != nil {
				t.Fatal(err)
			}
			// Host B has read the secret under the first KEK.
			if _, err := b.Get("a"); err != nil {
				t.Fatal(err)
			}
			if _, err := a.RotateKEK(key); err != nil {
				t.Fatal(err)
			}
			if err := tc.write(b); err != nil {
				t.Fatalf("host B's %s right after host A rotated the KEK: %v", tc.name, err)
			}
			tc.check(t, a)
		})
	}
}

// TestLargeRecordSaysTooLarge: a record over the cluster's
// --max-request-bytes (two versions of a 900 KiB config) is refused as too
// large, naming what to change, not reported as a cluster without quorum;
// the client's own send cap used to refuse it first.
func TestLargeRecordSaysTooLarge(t *testing.T) {
	c := cluster(t)
	s := openStore(t, open(t, c, newPrefix()), filepath.Join(t.TempDir(), "key"))
	cfgs := s.Configs()
	big := bytes.Repeat([]byte("c"), 900<<10)
	if _, err := cfgs.Create(store.Spec{Name: "big", Data: big}); err != nil {
		t.Fatal(err)
	}
	_, err := cfgs.Update("big", big[1:], 2, nil)
	if !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), "refused a record as too large") {
		t.Fatalf("update to a record over the cluster's limit: %v", err)
	}
	if got, err := cfgs.Get("big"); err != nil || got.Current != 1 {
		t.Fatalf("after the refused update: %+v, %v", got, err)
	}
}
