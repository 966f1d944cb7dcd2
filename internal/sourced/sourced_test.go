package sourced_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secretd/secretd/errdefs"
	"github.com/secretd/secretd/internal/audit"
	"github.com/secretd/secretd/internal/source"
	"github.com/secretd/secretd/internal/sourced"
	"github.com/secretd/secretd/internal/store"
	"github.com/secretd/secretd/internal/store/bolt"
)

// fake is a source whose value and failure the test sets.
type fake struct {
	mu         sync.Mutex
	value      string
	err        error
	doNotReuse bool
	asked      []source.Request
}

func (f *fake) Fetch(_ context.Context, req source.Request) (source.Value, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, req)
	if f.err != nil {
		return source.Value{}, f.err
	}
	return source.Value{Data: []byte(f.value), DoNotReuse: f.doNotReuse}, nil
}

func (f *fake) set(value string, err error) {
	f.mu.Lock()
	f.value, f.err = value, err
	f.mu.Unlock()
}

func newService(t *testing.T) (*sourced.Service, *fake, *store.Store) {
	t.Helper()
	dir := t.TempDir()
	b, err := bolt.Open(filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := store.Open(b, store.Config{KeyFile: filepath.Join(dir, "key"), HighWaterFile: filepath.Join(dir, "hw.json")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fake{value: "v1"}
	return &sourced.Service{Store: st, Drivers: &source.Drivers{Builtin: map[string]source.Provider{"fake": f}}, Log: slog.New(slog.DiscardHandler)}, f, st
}

func create(t *testing.T, st *store.Store, name string, src store.SourceSpec) store.Secret {
	t.Helper()
	sec, err := st.Create(store.Spec{Name: name, Source: &src})
	if err != nil {
		t.Fatal(err)
	}
	return sec
}

// TestFetchNoCache: each Mount asks the source with the container's
// fields; nothing is stored; a failing source fails the Mount.
func TestFetchNoCache(t *testing.T) {
	s, f, st := newService(t)
	sec := create(t, st, "plain", store.SourceSpec{Driver: "fake", Options: map[string]string{"k": "tok"}})
	who := source.Container{ID: "c1", Name: "web"}
	got, err := s.Fetch(context.Background(), sec, who)
	if err != nil || string(got) != "v1" {
		t.Fatalf("fetch: %q, %v", got, err)
	}
	if req := f.asked[0]; req.Container.Name != "web" || req.Options["k"] != "tok" || req.SecretName != "plain" {
		t.Errorf("the source was asked %+v", req)
	}
	if cur, _ := st.Get("plain"); cur.Current != 0 {
		t.Errorf("a value without --cache was stored: version %d", cur.Current)
	}
	f.set("", errors.New("down"))
	if _, err := s.Fetch(context.Background(), sec, who); err == nil {
		t.Fatal("a failing source without a cache served a value")
	}
}

// TestFetchCache: --cache keeps the last value and serves it when the
// source fails, and LastMount says so; a DoNotReuse value is never kept.
func TestFetchCache(t *testing.T) {
	s, f, st := newService(t)
	sec := create(t, st, "cached", store.SourceSpec{Driver: "fake", Cache: true})
	if _, err := s.Fetch(context.Background(), sec, source.Container{}); err != nil {
		t.Fatal(err)
	}
	f.set("", errors.New("vault sealed"))
	got, err := s.Fetch(context.Background(), sec, source.Container{})
	if err != nil || string(got) != "v1" {
		t.Fatalf("with the source down: %q, %v; want the cached value", got, err)
	}
	if st, ok := s.LastMount(sec.ID); !ok || !st.Cached || st.Err == "" {
		t.Errorf("last mount %+v, want served from the cache with the source's error", st)
	}

	once := create(t, st, "once", store.SourceSpec{Driver: "fake", Cache: true})
	f.set("one-container", nil)
	f.doNotReuse = true
	if _, err := s.Fetch(context.Background(), once, source.Container{}); err != nil {
		t.Fatal(err)
	}
	if cur, _ := st.Get("once"); cur.Current != 0 {
		t.Errorf("a DoNotReuse value was cached: version %d", cur.Current)
	}
	// A refreshed secret cannot be DoNotReuse: there is no one value to roll out.
	ref := create(t, st, "ref", store.SourceSpec{Driver: "fake", Refresh: time.Minute})
	if _, err := s.Prime(context.Background(), ref); !errors.Is(err, errdefs.ErrInvalid) || !errors.Is(err, source.ErrDoNotReuse) {
		t.Errorf("prime of a DoNotReuse refresh: %v", err)
	}
}

// TestRefresh: a changed value becomes a new version through the store's
// update, which notifies (so it rotates); a failed poll stores nothing.
func TestRefresh(t *testing.T) {
	s, f, st := newService(t)
	rotated := make(chan int, 10)
	st.OnUpdate(func(sec store.Secret) { rotated <- sec.Current })
	sec := create(t, st, "ref", store.SourceSpec{Driver: "fake", Refresh: 10 * time.Millisecond})
	if _, err := s.Prime(context.Background(), sec); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	f.set("v2", nil)
	select {
	case v := <-rotated:
		if v != 2 {
			t.Fatalf("rotated version %d, want 2", v)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the changed value never became a version")
	}
	if data, _, err := st.Reveal("ref", 0); err != nil || string(data) != "v2" {
		t.Fatalf("current value %q, %v", data, err)
	}
	if !s.Refreshing(sec.ID) {
		t.Error("no refresher runs for the secret")
	}
	if _, err := st.Remove("ref", nil); err != nil {
		t.Fatal(err)
	}
	s.Sync()
	if s.Refreshing(sec.ID) {
		t.Error("the refresher of a removed secret still runs")
	}
}

// TestAuthorize: a shell secret naming its own command is root's to make:
// a unix socket peer with the daemon's uid, or a TLS client when the daemon
// allows it. Anyone else, or a caller nobody knows, is refused with
// ErrForbidden. An allowed spec carries this host's stamp, and a stamp the
// caller made up is dropped; specs without commands are anyone's.
func TestAuthorize(t *testing.T) {
	s, _, _ := newService(t)
	s.Host = "host-a"
	cmd := store.SourceSpec{Driver: "shell", Options: map[string]string{"lookup": "id"}, CommandsBy: "forged"}
	self := uint32(os.Geteuid())
	for _, c := range []struct {
		name string
		spec store.SourceSpec
		who  *audit.Actor
		tls  bool
		want string // "" allowed; the stamp expected then is in stamp
		by   string
	}{
		{"root peer", cmd, &audit.Actor{Cred: true, UID: self}, false, "", "host-a"},
		{"group member", cmd, &audit.Actor{Cred: true, UID: self + 1000, GID: 999}, false, "only root may name one", ""},
		{"unknown caller", cmd, nil, false, "only root may name one", ""},
		{"TLS client", cmd, &audit.Actor{CN: "bot"}, false, "takes none from TLS clients", ""},
		{"TLS client allowed", cmd, &audit.Actor{CN: "bot"}, true, "", "host-a"},
		{"configured commands", store.SourceSpec{Driver: "shell", Options: map[string]string{"timeout": "5s"}, CommandsBy: "forged"}, &audit.Actor{Cred: true, UID: self + 1000}, false, "", ""},
		{"a plugin", store.SourceSpec{Driver: "vault", Options: map[string]string{"lookup": "x"}}, nil, false, "", ""},
	} {
		s.TLSCommands = c.tls
		got, err := s.Authorize(c.spec, c.who)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (!errors.Is(err, errdefs.ErrForbidden) || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want forbidden: %q", c.name, err, c.want)
		case c.want == "" && got.CommandsBy != c.by:
			t.Errorf("%s: stamped %q, want %q", c.name, got.CommandsBy, c.by)
		}
	}
}
