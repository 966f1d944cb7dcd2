package source_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/secretd/secretd/internal/source"
	"github.com/secretd/secretd/internal/store"
)

func TestMaxSizeIsTheStores(t *testing.T) {
	if source.MaxSize != store.MaxSecretSize {
		t.Errorf("source.MaxSize %d, store.MaxSecretSize %d: values a source returns must fit the store", source.MaxSize, store.MaxSecretSize)
	}
}

func TestCheckValue(t *testing.T) {
	for _, n := range []int{0, source.MaxSize, source.MaxSize + 1} {
		if err := source.CheckValue(make([]byte, n)); !errors.Is(err, source.ErrInvalidValue) {
			t.Errorf("%d bytes: %v, want ErrInvalidValue", n, err)
		}
	}
	for _, n := range []int{1, source.MaxSize - 1} {
		if err := source.CheckValue(make([]byte, n)); err != nil {
			t.Errorf("%d bytes: %v", n, err)
		}
	}
}

func TestDetail(t *testing.T) {
	cases := []struct{ in, secret, want string }{
		{"line one\nline two\t\x00end\n", "", "line one line two end"},
		{"echo hunter22 failed", "hunter22", "echo [redacted] failed"},
		{"short ab", "ab", "short ab"}, // too short to redact without mangling text
		{"bad \xff utf8", "", "bad ? utf8"},
		{strings.Repeat("é", 600), "", strings.Repeat("é", 256) + "..."},
	}
	for _, c := range cases {
		if got := source.Detail([]byte(c.in), []byte(c.secret)); got != c.want {
			t.Errorf("Detail(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestReadLimited(t *testing.T) {
	for _, n := range []int{0, 1, 4095, 4096, 4097, 10000, 10001} {
		in := bytes.Repeat([]byte("x"), n)
		got, over, err := source.ReadLimited(iotest.OneByteReader(bytes.NewReader(in)), 10000)
		if err != nil {
			t.Fatal(err)
		}
		if over != (n > 10000) {
			t.Errorf("%d bytes: over=%v", n, over)
		}
		if !over && !bytes.Equal(got, in) {
			t.Errorf("%d bytes: read %d", n, len(got))
		}
	}
	_, _, err := source.ReadLimited(iotest.ErrReader(errors.New("boom")), 10)
	if err == nil || err.Error() != "boom" {
		t.Errorf("read error: %v", err)
	}
}

// fake is a Provider answering from a list, for the helpers' tests.
type fake struct {
	mu      sync.Mutex
	answers []answer
	asked   int
	options map[string]string
	fetched chan struct{}
}

type answer struct {
	data       string
	doNotReuse bool
	err        error
}

func (f *fake) Fetch(_ context.Context, req source.Request) (source.Value, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fetched != nil {
		defer func() { f.fetched <- struct{}{} }()
	}
	a := f.answers[min(f.asked, len(f.answers)-1)]
	f.asked++
	if a.err != nil {
		return source.Value{}, a.err
	}
	return source.Value{Data: []byte(a.data), DoNotReuse: a.doNotReuse}, nil
}

func (f *fake) Validate(_ context.Context, opts map[string]string) error {
	if opts["lookup"] == "" {
		return fmt.Errorf("%w: the lookup option is empty", source.ErrInvalidOptions)
	}
	return nil
}

type finder map[string]source.Provider

func (f finder) Find(_ context.Context, name string) (source.Provider, error) {
	if p, ok := f[name]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("%w: no plugin %q", source.ErrUnknownDriver, name)
}

func TestDrivers(t *testing.T) {
	ctx := context.Background()
	shell := &fake{answers: []answer{{data: "from shell"}}}
	plug := &fake{answers: []answer{{data: ""}, {err: errors.New("vault sealed")}}}
	d := &source.Drivers{Builtin: map[string]source.Provider{"shell": shell}, Plugins: finder{"vault": plug}}
	req := source.Request{SecretName: "db", Options: map[string]string{"token": "CANARY-tok"}}

	v, err := d.Fetch(ctx, "shell", req)
	if err != nil || string(v.Data) != "from shell" {
		t.Errorf("shell: %q, %v", v.Data, err)
	}
	_, err = d.Fetch(ctx, "vault", req)
	if !errors.Is(err, source.ErrInvalidValue) || err.Error() != `secret 'db': secret driver "vault": invalid value from source: the source returned an empty value` {
		t.Errorf("empty value: %v", err)
	}
	_, err = d.Fetch(ctx, "vault", req)
	if err == nil || err.Error() != `secret 'db': secret driver "vault": vault sealed` {
		t.Errorf("plain error from a provider: %v", err)
	}
	_, err = d.Fetch(ctx, "nope", req)
	if !errors.Is(err, source.ErrUnknownDriver) || err.Error() != `secret 'db': secret driver "nope": unknown secret driver: no plugin "nope"` {
		t.Errorf("unknown driver: %v", err)
	}
	if err := d.Validate(ctx, "db", "shell", map[string]string{"lookup": ""}); !errors.Is(err, source.ErrInvalidOptions) ||
		err.Error() != "secret 'db': shell driver: invalid driver options: the lookup option is empty" {
		t.Errorf("validate: %v", err)
	}
	if err := d.Validate(ctx, "db", "", nil); !errors.Is(err, source.ErrUnknownDriver) {
		t.Errorf("validate with no driver: %v", err)
	}
	builtinOnly := &source.Drivers{Builtin: map[string]source.Provider{"shell": shell}}
	if _, err := builtinOnly.Lookup(ctx, "vault"); !errors.Is(err, source.ErrUnknownDriver) {
		t.Errorf("no plugin finder: %v", err)
	}
	// A plugin keeps its own values: data given for it is refused.
	if err := d.CheckStore(ctx, "db", "vault", nil); !errors.Is(err, source.ErrCannotStore) ||
		!strings.Contains(err.Error(), `secret 'db': secret driver "vault": the driver cannot store a value`) {
		t.Errorf("a plugin given data: %v", err)
	}
	if err := d.Store(ctx, "vault", req, []byte("x")); !errors.Is(err, source.ErrCannotStore) {
		t.Errorf("storing into a plugin: %v", err)
	}
}

// memCache is a Cache in memory, standing for the store.
type memCache struct {
	data  map[string][]byte
	saves int
	fail  error
}

func (c *memCache) Load(_ context.Context, id string) ([]byte, error) {
	b, ok := c.data[id]
	if !ok {
		return nil, source.ErrNotCached
	}
	return bytes.Clone(b), nil
}

func (c *memCache) Save(_ context.Context, id string, data []byte) error {
	if c.fail != nil {
		return c.fail
	}
	c.saves++
	c.data[id] = bytes.Clone(data)
	return nil
}

func TestFetchCached(t *testing.T) {
	ctx := context.Background()
	down := errors.New("connection refused")
	p := &fake{answers: []answer{{data: "v1"}, {err: down}, {data: "otp", doNotReuse: true}, {err: down}}}
	d := &source.Drivers{Builtin: map[string]source.Provider{"shell": p}}
	req := source.Request{SecretID: "id1", SecretName: "db"}
	c := &memCache{data: map[string][]byte{}}

	// Nothing cached and the source down: the source's error, as is.
	none := &fake{answers: []answer{{err: down}}}
	_, err := source.FetchCached(ctx, &source.Drivers{Builtin: map[string]source.Provider{"shell": none}}, "shell", req, c)
	if !errors.Is(err, down) || !strings.Contains(err.Error(), "secret 'db'") {
		t.Errorf("no cache, source down: %v", err)
	}

	res, err := source.FetchCached(ctx, d, "shell", req, c)
	if err != nil || string(res.Value.Data) != "v1" || res.Cached || string(c.data["id1"]) != "v1" {
		t.Fatalf("first fetch: %+v, %v, cache %q", res, err, c.data["id1"])
	}
	res, err = source.FetchCached(ctx, d, "shell", req, c)
	if err != nil || string(res.Value.Data) != "v1" || !res.Cached || !errors.Is(res.SourceErr, down) {
		t.Errorf("source down, cached: %+v, %v", res, err)
	}
	// A DoNotReuse value is served but never cached.
	res, err = source.FetchCached(ctx, d, "shell", req, c)
	if err != nil || string(res.Value.Data) != "otp" || res.Cached || string(c.data["id1"]) != "v1" || c.saves != 1 {
		t.Errorf("DoNotReuse: %+v, %v, cache %q after %d saves", res, err, c.data["id1"], c.saves)
	}
	// Without a cache, a failure is a failure.
	if _, err := source.FetchCached(ctx, d, "shell", req, nil); !errors.Is(err, down) {
		t.Errorf("no cache: %v", err)
	}
	// A failed save does not fail the fetch.
	c.fail = errors.New("store locked")
	p2 := &fake{answers: []answer{{data: "v2"}}}
	res, err = source.FetchCached(ctx, &source.Drivers{Builtin: map[string]source.Provider{"shell": p2}}, "shell", req, c)
	if err != nil || string(res.Value.Data) != "v2" || res.SaveErr == nil {
		t.Errorf("save failure: %+v, %v", res, err)
	}
}

type events struct {
	mu      sync.Mutex
	changes []string
	errs    []string
}

func newRefresher(p *fake, ev *events, failChange error) *source.Refresher {
	d := &source.Drivers{Builtin: map[string]source.Provider{"shell": p}}
	return &source.Refresher{
		Fetch:    d.Fetcher("shell", source.Request{SecretName: "db"}),
		Interval: time.Hour,
		OnChange: func(_ context.Context, v source.Value) error {
			if failChange != nil {
				return failChange
			}
			ev.mu.Lock()
			ev.changes = append(ev.changes, string(v.Data))
			ev.mu.Unlock()
			return nil
		},
		OnError: func(err error, n int) {
			ev.mu.Lock()
			ev.errs = append(ev.errs, fmt.Sprintf("%d: %v", n, err))
			ev.mu.Unlock()
		},
	}
}

func TestRefresherPoll(t *testing.T) {
	ctx := context.Background()
	down := errors.New("sealed")
	p := &fake{answers: []answer{{data: "v1"}, {data: "v1"}, {err: down}, {err: down}, {data: "v1"}, {data: "v2"}, {data: "otp", doNotReuse: true}}}
	ev := &events{}
	r := newRefresher(p, ev, nil)
	seed := []byte("v1")
	r.Seed(seed)
	for range p.answers {
		_, _ = r.Poll(ctx)
	}
	if got := strings.Join(ev.changes, ","); got != "v2" {
		t.Errorf("changes %q, want only v2 (v1 was the seed)", got)
	}
	want := []string{
		"1: secret 'db': shell driver: sealed",
		"2: secret 'db': shell driver: sealed",
		"1: the source marks its values DoNotReuse: each container gets its own, so it cannot be refreshed: drop --refresh",
	}
	if strings.Join(ev.errs, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(ev.errs, "\n"), strings.Join(want, "\n"))
	}
	if r.Failures() != 3 {
		t.Errorf("%d failures counted, want 3", r.Failures())
	}

	// Unseeded, the first value is a change.
	ev2 := &events{}
	r2 := newRefresher(&fake{answers: []answer{{data: "a"}, {data: "a"}}}, ev2, nil)
	r2.Poll(ctx)
	r2.Poll(ctx)
	if strings.Join(ev2.changes, ",") != "a" {
		t.Errorf("unseeded changes %q, want a once", ev2.changes)
	}

	// A change the callback could not take is offered again.
	ev3 := &events{}
	r3 := newRefresher(&fake{answers: []answer{{data: "b"}}}, ev3, errors.New("store locked"))
	r3.Seed([]byte("a"))
	for i := 0; i < 2; i++ {
		if changed, err := r3.Poll(ctx); changed || err == nil || err.Error() != "store locked" {
			t.Errorf("poll %d: %v, %v", i, changed, err)
		}
	}
	if len(ev3.errs) != 2 || ev3.errs[1] != "2: store locked" {
		t.Errorf("errors %q", ev3.errs)
	}
}

// TestRefresherRun drives Run with a tick channel: each tick is one fetch.
func TestRefresherRun(t *testing.T) {
	p := &fake{answers: []answer{{data: "v1"}, {data: "v2"}, {data: "v2"}}, fetched: make(chan struct{})}
	ev := &events{}
	r := newRefresher(p, ev, nil)
	ticks := make(chan time.Time)
	r.Ticks = ticks
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	for i := 0; i < 3; i++ {
		ticks <- time.Time{}
		<-p.fetched
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run returned %v", err)
	}
	if got := strings.Join(ev.changes, ","); got != "v1,v2" {
		t.Errorf("changes %q, want v1,v2", got)
	}
	if err := (&source.Refresher{}).Run(context.Background()); err == nil {
		t.Error("Run with no interval and no ticks did not fail")
	}
}
