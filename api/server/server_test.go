package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/api/client"
	"github.com/secretd/secretd/api/server"
	"github.com/secretd/secretd/errdefs"
	"github.com/secretd/secretd/internal/source"
	"github.com/secretd/secretd/internal/source/shell"
	"github.com/secretd/secretd/internal/sourced"
	"github.com/secretd/secretd/internal/store"
	"github.com/secretd/secretd/internal/store/bolt"
)

const (
	msgBadName = "invalid name, only 64 [a-zA-Z0-9-_.] characters allowed, and the start and end character must be [a-zA-Z0-9]"
	msgBadData = "secret data must be larger than 0 and less than 512000 bytes"
	msgTooBig  = "request body is larger than 1048576 bytes"
	msgLocked  = "secretd is locked: run 'secretd unlock'"
	msgNoPage  = "page not found"
)

// fakeTasks stands in for the controller, so removal guards and `ps` can be
// driven without Docker.
type fakeTasks struct {
	mu    sync.Mutex
	users map[string][]string // by secret name
	err   error
	tasks []api.Task
	calls int
	// hang, when set, makes Users hang as a stopped engine does: it
	// signals entered and waits for hang to close or its context to end.
	hang, entered chan struct{}
}

func (f *fakeTasks) Users(ctx context.Context, sec store.Secret) ([]string, error) {
	f.mu.Lock()
	hang, entered := f.hang, f.entered
	f.mu.Unlock()
	if hang != nil {
		entered <- struct{}{}
		select {
		case <-hang:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	key := sec.Name
	if sec.Kind == store.KindConfig {
		key = "config:" + sec.Name
	}
	return slices.Clone(f.users[key]), nil
}

func (f *fakeTasks) Tasks() []api.Task {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.tasks)
}

func (f *fakeTasks) set(users map[string][]string, err error) {
	f.mu.Lock()
	f.users, f.err = users, err
	f.mu.Unlock()
}

type env struct {
	t         *testing.T
	dir       string
	keyFile   string
	store     *store.Store
	unlockKey string
	tasks     *fakeTasks
	srv       *server.Server
	// url and hc reach srv over a unix socket, as the CLI does, so the
	// server knows the peer: this test process, root.
	url string
	hc  *http.Client

	// sent holds every secret payload the test sent, so every response
	// body can be checked for it.
	mu   sync.Mutex
	sent [][]byte
}

type envOpts struct {
	autolock  bool
	status    func(*api.Status)
	rotations server.Rotations
	// sources enables driver secrets with the built-in shell driver.
	sources bool
	renders server.Renders
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dir: dir, keyFile: filepath.Join(dir, "key"), tasks: &fakeTasks{}}
	b, err := bolt.Open(filepath.Join(dir, "secrets.db"))
	if err != nil {
		t.Fatal(err)
	}
	e.store, e.unlockKey, err = store.Open(b, store.Config{KeyFile: e.keyFile, Autolock: o.autolock})
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { e.store.Close() })
	cfg := server.Config{
		Store: e.store, KeyFile: e.keyFile, Tasks: e.tasks, Status: o.status, Version: "test",
		Rotations: o.rotations, Renders: o.renders,
	}
	if o.sources {
		cfg.Sources = &sourced.Service{Store: e.store, Log: slog.New(slog.DiscardHandler),
			Drivers: &source.Drivers{Builtin: map[string]source.Provider{shell.Name: shell.New(shell.Config{})}}}
	}
	e.srv = server.New(cfg)
	sockDir, err := os.MkdirTemp("", "sd") // short: a socket path must fit in 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(sockDir, "api.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Serve(ctx, l) }()
	e.url = "http://secretd"
	e.hc = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	t.Cleanup(func() {
		e.hc.CloseIdleConnections()
		cancel()
		<-done
		os.RemoveAll(sockDir)
	})
	return e
}

// canary returns secret data that is unique to this call and remembered, so
// that a response carrying it is caught wherever it shows up.
func (e *env) canary(tag string) []byte {
	d := []byte(fmt.Sprintf("CANARY-%s-%d-%s", tag, time.Now().UnixNano(), strings.Repeat("s3cr3t", 3)))
	e.mu.Lock()
	e.sent = append(e.sent, slices.Clone(d))
	e.mu.Unlock()
	return d
}

type response struct {
	code int
	hdr  http.Header
	body []byte
}

func (r response) message(t *testing.T) string {
	t.Helper()
	var er api.ErrorResponse
	if err := json.Unmarshal(r.body, &er); err != nil {
		t.Fatalf("error body %q is not the Engine's JSON error: %v", r.body, err)
	}
	return er.Message
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %q: %v", r.body, err)
	}
}

// do sends one request through real HTTP. body is sent raw when it is a
// string or []byte and as JSON otherwise; contentType "" sends none.
func (e *env) do(method, path string, body any, contentType ...string) response {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		switch b := body.(type) {
		case string:
			rd = strings.NewReader(b)
		case []byte:
			rd = bytes.NewReader(b)
		default:
			j, err := json.Marshal(b)
			if err != nil {
				e.t.Fatal(err)
			}
			rd = bytes.NewReader(j)
		}
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	ct := "application/json"
	if len(contentType) > 0 {
		ct = contentType[0]
	}
	if body != nil && ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	e.checkNoData(method+" "+path, b)
	return response{code: resp.StatusCode, hdr: resp.Header, body: b}
}

func (e *env) checkNoData(what string, body []byte) {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, d := range e.sent {
		if bytes.Contains(body, d) || bytes.Contains(body, []byte(base64.StdEncoding.EncodeToString(d))) {
			e.t.Errorf("%s: response carries secret data %q: %s", what, d, body)
		}
	}
	if bytes.Contains(body, []byte("CANARY-")) {
		e.t.Errorf("%s: response carries a canary: %s", what, body)
	}
}

func (e *env) create(name string, labels map[string]string, data []byte) string {
	e.t.Helper()
	r := e.do("POST", "/v1.41/secrets/create", swarm.SecretSpec{Annotations: swarm.Annotations{Name: name, Labels: labels}, Data: data})
	if r.code != http.StatusCreated {
		e.t.Fatalf("create %s: %d %s", name, r.code, r.body)
	}
	var cr swarm.SecretCreateResponse
	r.decode(e.t, &cr)
	return cr.ID
}

// dumpEntry is everything the store holds about one secret that the API can
// reach: metadata and the plaintext of every kept version.
type dumpEntry struct {
	Secret store.Secret
	Data   map[int]string
}

func (e *env) dump() []dumpEntry {
	e.t.Helper()
	out := []dumpEntry{}
	for _, view := range []*store.Store{e.store, e.store.Configs()} {
		list, err := view.List(store.Filter{})
		if err != nil {
			e.t.Fatalf("dump: %v", err)
		}
		for _, s := range list {
			d := dumpEntry{Secret: s, Data: map[int]string{}}
			if !e.store.Locked() {
				for _, v := range s.Versions {
					b, _, err := view.Reveal(s.ID, v.Version)
					if err != nil {
						e.t.Fatalf("dump: reveal %s@%d: %v", s.Name, v.Version, err)
					}
					d.Data[v.Version] = string(b)
				}
			}
			out = append(out, d)
		}
	}
	return out
}

// refused sends a request that must fail, checks its status and message,
// and checks that the store did not change at all.
func (e *env) refused(method, path string, body any, code int, msg string, contentType ...string) response {
	e.t.Helper()
	before := e.dump()
	r := e.do(method, path, body, contentType...)
	if r.code != code {
		e.t.Errorf("%s %s: status %d, want %d (body %s)", method, path, r.code, code, r.body)
	}
	got := r.message(e.t)
	if sub, ok := strings.CutPrefix(msg, "~"); ok {
		if !strings.Contains(got, sub) {
			e.t.Errorf("%s %s: message %q does not contain %q", method, path, got, sub)
		}
	} else if got != msg {
		e.t.Errorf("%s %s: message %q, want %q", method, path, got, msg)
	}
	if ct := r.hdr.Get("Content-Type"); ct != "application/json" {
		e.t.Errorf("%s %s: error Content-Type %q, want application/json", method, path, ct)
	}
	if after := e.dump(); !reflect.DeepEqual(before, after) {
		e.t.Errorf("%s %s: refused request changed the store:\nbefore %+v\nafter  %+v", method, path, before, after)
	}
	return r
}

func (e *env) inspect(ref string) api.Secret {
	e.t.Helper()
	r := e.do("GET", "/v1.41/secrets/"+url.PathEscape(ref), nil)
	if r.code != http.StatusOK {
		e.t.Fatalf("inspect %s: %d %s", ref, r.code, r.body)
	}
	var s api.Secret
	r.decode(e.t, &s)
	return s
}

func (e *env) reveal(ref string, version int) string {
	e.t.Helper()
	b, _, err := e.store.Reveal(ref, version)
	if err != nil {
		e.t.Fatalf("reveal %s@%d: %v", ref, version, err)
	}
	return string(b)
}

// TestPing: /_ping and /version answer as an Engine of API 1.55 does, at
// every version a client may put in the path, with the Engine's headers.
func TestPing(t *testing.T) {
	e := newEnv(t, envOpts{})
	for _, m := range []string{"GET", "HEAD"} {
		for _, p := range []string{"/_ping", "/v1.55/_ping", "/v1.44/_ping", "/v1.41/_ping", "/v1.24/_ping"} {
			r := e.do(m, p, nil)
			if r.code != http.StatusOK {
				t.Errorf("%s %s: %d", m, p, r.code)
			}
			for h, want := range map[string]string{
				"Api-Version": "1.55", "Ostype": "linux", "Docker-Experimental": "false", "Server": "secretd/test (linux)",
				// The docker CLI hides `docker secret` unless this says manager.
				"Swarm": "active/manager",
			} {
				if got := r.hdr.Get(h); got != want {
					t.Errorf("%s %s: %s %q, want %q", m, p, h, got, want)
				}
			}
			want := "OK"
			if m == "HEAD" {
				want = ""
			}
			if string(r.body) != want {
				t.Errorf("%s %s: body %q, want %q", m, p, r.body, want)
			}
		}
	}
	for _, p := range []string{"/version", "/v1.55/version", "/v1.24/version"} {
		r := e.do("GET", p, nil)
		var v struct{ APIVersion, MinAPIVersion, Version string }
		r.decode(t, &v)
		if r.code != 200 || v.APIVersion != "1.55" || v.MinAPIVersion != "1.24" || v.Version != "test" {
			t.Errorf("GET %s: %d %+v", p, r.code, v)
		}
	}
}

func TestVersionPrefixes(t *testing.T) {
	e := newEnv(t, envOpts{})
	id := e.create("prefixed", nil, e.canary("p"))
	for _, p := range []string{"/v1.55/secrets", "/v1.44/secrets", "/v1.41/secrets", "/v1.25/secrets", "/v1.24/secrets", "/secrets"} {
		r := e.do("GET", p, nil)
		var list []api.Secret
		r.decode(t, &list)
		if r.code != 200 || len(list) != 1 || list[0].ID != id {
			t.Errorf("GET %s: %d %s", p, r.code, r.body)
		}
		if got := r.hdr.Get("Api-Version"); got != "1.55" {
			t.Errorf("GET %s: Api-Version %q", p, got)
		}
	}
	r := e.do("POST", "/v1.24/secrets/create", swarm.SecretSpec{Annotations: swarm.Annotations{Name: "old-client"}, Data: e.canary("o")})
	if r.code != http.StatusCreated {
		t.Errorf("create through /v1.24: %d %s", r.code, r.body)
	}
}

// TestVersionRefused: a path at a version above the advertised one, or
// below the minimum, is refused as the Engine refuses it (400, its words)
// and changes nothing.
func TestVersionRefused(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.create("kept", nil, e.canary("k"))
	tooNew := func(v string) string {
		return "client version " + v + " is too new. Maximum supported API version is 1.55"
	}
	tooOld := func(v string) string {
		return "client version " + v + " is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"
	}
	spec := swarm.SecretSpec{Annotations: swarm.Annotations{Name: "refused"}, Data: e.canary("r")}
	for _, c := range []struct {
		method, path string
		body         any
		msg          string
	}{
		{"GET", "/v1.56/_ping", nil, tooNew("1.56")},
		{"GET", "/v1.56/secrets", nil, tooNew("1.56")},
		{"POST", "/v2.0/secrets/create", spec, tooNew("2.0")},
		{"POST", "/v1.100/secrets/create", spec, tooNew("1.100")},
		{"POST", "/v1.23/secrets/create", spec, tooOld("1.23")},
		{"DELETE", "/v1.12/secrets/kept", nil, tooOld("1.12")},
		{"GET", "/v1/secrets", nil, tooOld("1")},
	} {
		r := e.refused(c.method, c.path, c.body, http.StatusBadRequest, c.msg)
		if got := r.hdr.Get("Api-Version"); got != "1.55" {
			t.Errorf("%s %s: Api-Version %q on the refusal", c.method, c.path, got)
		}
	}
}

func TestCreate(t *testing.T) {
	e := newEnv(t, envOpts{})
	data := e.canary("create")
	r := e.do("POST", "/v1.41/secrets/create", swarm.SecretSpec{
		Annotations: swarm.Annotations{Name: "db_password", Labels: map[string]string{"env": "prod"}}, Data: data,
	})
	if r.code != http.StatusCreated {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	var cr swarm.SecretCreateResponse
	r.decode(t, &cr)
	if len(cr.ID) != 25 {
		t.Fatalf("create returned ID %q", cr.ID)
	}
	if got := e.reveal(cr.ID, 0); got != string(data) {
		t.Fatalf("stored data %q, want %q", got, data)
	}

	spec := func(name string, data []byte) swarm.SecretSpec {
		return swarm.SecretSpec{Annotations: swarm.Annotations{Name: name}, Data: data}
	}
	e.refused("POST", "/v1.41/secrets/create", spec("db_password", e.canary("dup")), 409, "secret db_password already exists")
	for _, name := range []string{"-lead", "trail-", "with space", "sl/ash", strings.Repeat("a", 65), "ünï"} {
		e.refused("POST", "/v1.41/secrets/create", spec(name, e.canary("n")), 400, msgBadName)
	}
	e.refused("POST", "/v1.41/secrets/create", spec("", e.canary("n")), 400, "name must be provided")
	e.refused("POST", "/v1.41/secrets/create", spec("empty", nil), 400, msgBadData)
	e.refused("POST", "/v1.41/secrets/create", `{"Name":"empty2","Data":""}`, 400, msgBadData)
	e.refused("POST", "/v1.41/secrets/create", spec("big", bytes.Repeat([]byte("x"), store.MaxSecretSize)), 400, msgBadData)
	if r := e.do("POST", "/v1.41/secrets/create", spec("just-fits", bytes.Repeat([]byte("y"), store.MaxSecretSize-1))); r.code != 201 {
		t.Errorf("create of %d bytes: %d %s", store.MaxSecretSize-1, r.code, r.body)
	}
	e.refused("POST", "/v1.41/secrets/create", spec("huge", bytes.Repeat([]byte("z"), 800<<10)), 413, msgTooBig)
	// Padding after a valid object must not sneak past the cap either.
	e.refused("POST", "/v1.41/secrets/create", `{"Name":"padded","Data":"eA=="}`+strings.Repeat(" ", api.MaxBodyBytes), 413, msgTooBig)

	bad := []struct{ name, body, msg string }{
		{"malformed", `{"Name":"m1","Data":"eA=="`, "~invalid JSON"},
		{"not an object", `[1,2]`, "~invalid JSON"},
		{"wrong type", `{"Name":5,"Data":"eA=="}`, "~invalid JSON"},
		{"wrong data type", `{"Name":"m2","Data":5}`, "~invalid JSON"},
		{"bad base64", `{"Name":"m3","Data":"!!!"}`, "~invalid JSON"},
		{"unknown field", `{"Nmae":"m4","Data":"eA=="}`, "~unknown field"},
		{"unknown nested field", `{"Name":"m5","Data":"eA==","Driver":{"Nmae":"x"}}`, "~unknown field"},
		{"trailing object", `{"Name":"m6","Data":"eA=="}{"Name":"m7","Data":"eA=="}`, "invalid JSON: unexpected data after the request object"},
		{"trailing garbage", `{"Name":"m8","Data":"eA=="} x`, "invalid JSON: unexpected data after the request object"},
		{"trailing bracket", `{"Name":"m9","Data":"eA=="}]`, "invalid JSON: unexpected data after the request object"},
		{"empty body", ``, "invalid JSON: request body is empty"},
		{"whitespace body", "  \n", "invalid JSON: request body is empty"},
		{"null", `null`, "name must be provided"},
	}
	for _, c := range bad {
		t.Logf("body: %s", c.name)
		e.refused("POST", "/v1.41/secrets/create", c.body, 400, c.msg)
	}
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"} {
		e.refused("POST", "/v1.41/secrets/create", `{"Name":"ct","Data":"eA=="}`, 400, fmt.Sprintf("unsupported Content-Type %q: use application/json", ct), ct)
	}
	// The Engine API lets clients omit the Content-Type; curl often does.
	if r := e.do("POST", "/v1.41/secrets/create", `{"Name":"no-ct","Data":"eA=="}`, ""); r.code != 201 {
		t.Errorf("create without Content-Type: %d %s", r.code, r.body)
	}
	e.refused("POST", "/v1.41/secrets/create", swarm.SecretSpec{Annotations: swarm.Annotations{Name: "drv"}, Data: e.canary("d"), Driver: &swarm.Driver{Name: "vault"}}, 400, "~runs without secret drivers")
	e.refused("POST", "/v1.41/secrets/create", swarm.SecretSpec{Annotations: swarm.Annotations{Name: "drv"}, Driver: &swarm.Driver{Name: "vault"}}, 400, "~runs without secret drivers")
	e.refused("POST", "/v1.41/secrets/create", api.SecretCreateRequest{SecretSpec: swarm.SecretSpec{Annotations: swarm.Annotations{Name: "drv"}, Data: e.canary("r")}, Refresh: "1s"}, 400, "~give --driver too")
	e.refused("POST", "/v1.41/secrets/create", swarm.SecretSpec{Annotations: swarm.Annotations{Name: "tpl"}, Data: e.canary("t"), Templating: &swarm.Driver{Name: "jinja"}}, 400, `unknown template driver "jinja": the only one is golang`)
	e.refused("POST", "/v1.41/secrets/create", swarm.SecretSpec{Annotations: swarm.Annotations{Name: "tpl"}, Data: append(e.canary("t"), `{{ vault "x" }}`...), Templating: &swarm.Driver{Name: "golang"}}, 400, `~function "vault" not defined`)
	e.refused("POST", "/v1.41/secrets/create", swarm.SecretSpec{Annotations: swarm.Annotations{Name: "tpl"}, Data: e.canary("t"), Templating: &swarm.Driver{Name: "golang", Options: map[string]string{"a": "b"}}}, 400, "template driver golang takes no options")
	e.refused("POST", "/v1.41/secrets/create", swarm.SecretSpec{Annotations: swarm.Annotations{Name: "tpl"}, Templating: &swarm.Driver{Name: "golang"}, Driver: &swarm.Driver{Name: "vault"}}, 400, "~")
	e.refused("POST", "/v1.41/secrets/create", swarm.SecretSpec{Annotations: swarm.Annotations{Name: "lbl", Labels: map[string]string{"a b": "c"}}, Data: e.canary("l")}, 400, "~must not contain")
}

func TestList(t *testing.T) {
	e := newEnv(t, envOpts{})
	ids := map[string]string{}
	for name, labels := range map[string]map[string]string{
		"app-db":    {"env": "prod", "tier": "db"},
		"app-cache": {"env": "dev"},
		"app":       nil,
		"other":     {"tier": "web"},
	} {
		ids[name] = e.create(name, labels, e.canary(name))
	}
	names := func(path string) []string {
		t.Helper()
		r := e.do("GET", path, nil)
		if r.code != 200 {
			t.Fatalf("GET %s: %d %s", path, r.code, r.body)
		}
		var list []api.Secret
		r.decode(t, &list)
		out := []string{}
		for _, s := range list {
			out = append(out, s.Spec.Name)
			if s.Spec.Labels == nil {
				t.Errorf("%s: Labels of %s is null; the docker CLI expects an object", path, s.Spec.Name)
			}
		}
		// The CLI's table holds the same secrets, field for field.
		tpath := strings.Replace(path, "/v1.41/secrets", "/v1.41/secretd/secrets", 1)
		r = e.do("GET", tpath, nil)
		if r.code != 200 {
			t.Fatalf("GET %s: %d %s", tpath, r.code, r.body)
		}
		var tab api.SecretTable
		r.decode(t, &tab)
		var rows []api.Secret
		for i, id := range tab.IDs {
			s := api.Secret{CurrentVersion: tab.CurrentVersions[i]}
			s.ID, s.Spec.Name = id, tab.Names[i]
			s.CreatedAt, s.UpdatedAt = time.Unix(0, tab.CreatedAt[i]).UTC(), time.Unix(0, tab.UpdatedAt[i]).UTC()
			s.Spec.Labels = tab.Labels[id]
			if s.Spec.Labels == nil {
				s.Spec.Labels = map[string]string{}
			}
			rows = append(rows, s)
		}
		for i := range list {
			list[i].Version = swarm.Version{} // not a column
		}
		if len(rows) != len(list) || (len(rows) > 0 && !reflect.DeepEqual(rows, list)) {
			t.Errorf("GET %s:\n%+v\nGET %s:\n%+v", tpath, rows, path, list)
		}
		return out
	}
	q := func(args ...filters.KeyValuePair) string {
		j, err := filters.ToJSON(filters.NewArgs(args...))
		if err != nil {
			t.Fatal(err)
		}
		return "/v1.41/secrets?filters=" + url.QueryEscape(j)
	}
	cases := []struct {
		path string
		want []string
	}{
		{"/v1.41/secrets", []string{"app", "app-cache", "app-db", "other"}},
		{q(filters.Arg("name", "app")), []string{"app", "app-cache", "app-db"}},
		{q(filters.Arg("name", "app-")), []string{"app-cache", "app-db"}},
		{q(filters.Arg("name", "app-d"), filters.Arg("name", "oth")), []string{"app-db", "other"}},
		{q(filters.Arg("names", "app")), []string{"app"}},
		{q(filters.Arg("names", "app-"), filters.Arg("names", "other")), []string{"other"}},
		{q(filters.Arg("id", ids["other"][:5])), []string{"other"}},
		{q(filters.Arg("id", ids["app-db"])), []string{"app-db"}},
		{q(filters.Arg("label", "env")), []string{"app-cache", "app-db"}},
		{q(filters.Arg("label", "env=prod")), []string{"app-db"}},
		{q(filters.Arg("label", "env=staging")), []string{}},
		{q(filters.Arg("label", "env"), filters.Arg("label", "tier")), []string{"app-db"}},
		{q(filters.Arg("label", "tier"), filters.Arg("name", "o")), []string{"other"}},
		// The pre-1.22 form the Engine still accepts.
		{"/v1.41/secrets?filters=" + url.QueryEscape(`{"names":["app"]}`), []string{"app"}},
	}
	for _, c := range cases {
		if got := names(c.path); !slices.Equal(got, c.want) {
			t.Errorf("GET %s: %v, want %v", c.path, got, c.want)
		}
	}
	e.refused("GET", q(filters.Arg("x", "1")), nil, 400, "invalid filter 'x'")
	e.refused("GET", q(filters.Arg("name", "a"), filters.Arg("driver", "v")), nil, 400, "invalid filter 'driver'")
	e.refused("GET", "/v1.41/secrets?filters="+url.QueryEscape(`{"name":`), nil, 400, "~invalid filters")
	e.refused("GET", "/v1.41/secrets?filters="+url.QueryEscape(`[1]`), nil, 400, "~invalid filters")
	e.refused("GET", "/v1.41/secretd/secrets?filters="+url.QueryEscape(`{"driver":["x"]}`), nil, 400, "invalid filter 'driver'")
}

// The list answer is built from cached entries; every write, through the
// API or straight to the store (as another host sharing it would), must
// show in the next one, and the bytes must be what encoding the secrets
// anew gives.
func TestListFollowsWrites(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.create("kept", map[string]string{"k": "v"}, e.canary("kept"))
	e.create("rotated", nil, e.canary("r1"))
	e.create("removed", nil, e.canary("gone"))
	list := func() []api.Secret {
		t.Helper()
		r := e.do("GET", "/v1.41/secrets", nil)
		if r.code != 200 {
			t.Fatalf("list: %d %s", r.code, r.body)
		}
		var out []api.Secret
		r.decode(t, &out)
		var again bytes.Buffer
		json.NewEncoder(&again).Encode(out)
		if !bytes.Equal(r.body, again.Bytes()) {
			t.Errorf("list answer differs from the encoding of its secrets:\n%s\n%s", r.body, again.Bytes())
		}
		return out
	}
	// The same as inspect, without the versions.
	want := func(names ...string) []api.Secret {
		var out []api.Secret
		for _, n := range names {
			s := e.inspect(n)
			s.Versions = nil
			out = append(out, s)
		}
		return out
	}
	check := func(what string, names ...string) {
		t.Helper()
		if got, w := list(), want(names...); !reflect.DeepEqual(got, w) {
			t.Errorf("%s: list\n%+v\nwant\n%+v", what, got, w)
		}
	}
	check("first list", "kept", "removed", "rotated")
	check("second list, from the cache", "kept", "removed", "rotated")

	if r := e.do("POST", "/v1.41/secretd/secrets/rotated/update", api.SecretUpdateRequest{Data: e.canary("r2")}); r.code != 200 {
		t.Fatalf("update: %d %s", r.code, r.body)
	}
	if r := e.do("DELETE", "/v1.41/secrets/removed", nil); r.code != 204 {
		t.Fatalf("remove: %d %s", r.code, r.body)
	}
	check("after an update and a remove", "kept", "rotated")
	if got := list()[1]; got.CurrentVersion != 2 {
		t.Errorf("rotated listed at version %d, want 2", got.CurrentVersion)
	}

	// Another host sharing the store writes behind this server's back.
	if _, err := e.store.Update("kept", e.canary("k2"), 0, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Create(store.Spec{Name: "removed", Data: e.canary("back")}); err != nil {
		t.Fatal(err)
	}
	check("after writes straight to the store", "kept", "removed", "rotated")
	if r := e.do("GET", "/v1.41/secrets?filters="+url.QueryEscape(`{"name":{"rot":true}}`), nil); !strings.Contains(string(r.body), `"rotated"`) || strings.Contains(string(r.body), `"kept"`) {
		t.Errorf("filtered list: %s", r.body)
	}
	check("after a filtered list", "kept", "removed", "rotated")
}

func TestInspect(t *testing.T) {
	e := newEnv(t, envOpts{})
	id := e.create("inspected", map[string]string{"k": "v"}, e.canary("i"))
	e.create("zz-other", nil, e.canary("z"))
	for _, ref := range []string{id, "inspected", id[:8]} {
		s := e.inspect(ref)
		if s.ID != id || s.Spec.Name != "inspected" || s.Spec.Labels["k"] != "v" || s.CurrentVersion != 1 ||
			len(s.Versions) != 1 || s.Versions[0].Version != 1 || s.Version.Index == 0 || s.CreatedAt.IsZero() {
			t.Errorf("inspect %s: %+v", ref, s)
		}
		if s.Spec.Data != nil {
			t.Errorf("inspect %s shows data", ref)
		}
	}
	e.refused("GET", "/v1.41/secrets/nope", nil, 404, "secret 'nope' not found")
	e.refused("GET", "/secrets/nope", nil, 404, "secret 'nope' not found")
}

func TestRemove(t *testing.T) {
	e := newEnv(t, envOpts{})
	id := e.create("gone", nil, e.canary("g"))
	if r := e.do("DELETE", "/v1.41/secrets/"+id[:7], nil); r.code != http.StatusNoContent || len(r.body) != 0 {
		t.Fatalf("remove: %d %q", r.code, r.body)
	}
	e.refused("DELETE", "/v1.41/secrets/gone", nil, 404, "secret 'gone' not found")
	e.refused("GET", "/v1.41/secrets/"+id, nil, 404, fmt.Sprintf("secret '%s' not found", id))

	e.create("used", nil, e.canary("u"))
	e.tasks.set(map[string][]string{"used": {"web"}}, nil)
	e.refused("DELETE", "/v1.41/secrets/used", nil, 409, "secret 'used' is in use by the following container: web")
	e.tasks.set(map[string][]string{"used": {"web", "a"}}, nil)
	e.refused("DELETE", "/v1.41/secrets/used", nil, 409, "secret 'used' is in use by the following containers: a, web")
	e.tasks.set(nil, errdefs.Errorf(errdefs.ErrUnavailable, "cannot tell whether secret 'used' is in use: the Docker Engine did not answer: boom"))
	e.refused("DELETE", "/v1.41/secrets/used", nil, 503, "cannot tell whether secret 'used' is in use: the Docker Engine did not answer: boom")
	// An error of no known kind must not show its text: it may name internals.
	e.tasks.set(nil, errors.New("dial unix /var/run/docker.sock: secret internals"))
	r := e.refused("DELETE", "/v1.41/secrets/used", nil, 500, "internal error: see the secretd log")
	if bytes.Contains(r.body, []byte("internals")) {
		t.Errorf("500 body shows the internal error: %s", r.body)
	}
	e.inspect("used")
	e.tasks.set(nil, nil)
	if r := e.do("DELETE", "/v1.41/secrets/used", nil); r.code != 204 {
		t.Fatalf("remove once unused: %d %s", r.code, r.body)
	}
}

func TestUpdate(t *testing.T) {
	e := newEnv(t, envOpts{})
	v1 := e.canary("v1")
	e.create("rotated", nil, v1)
	before := e.inspect("rotated")
	v2 := e.canary("v2")
	r := e.do("POST", "/v1.41/secretd/secrets/rotated/update", api.SecretUpdateRequest{Data: v2})
	if r.code != 200 {
		t.Fatalf("update: %d %s", r.code, r.body)
	}
	var s api.Secret
	r.decode(t, &s)
	if s.CurrentVersion != 2 || len(s.Versions) != 2 || s.Versions[0].Version != 1 || s.Versions[1].Version != 2 {
		t.Fatalf("after update: %+v", s)
	}
	if s.Version.Index <= before.Version.Index || s.UpdatedAt.Before(before.UpdatedAt) {
		t.Errorf("index %d -> %d, updated %v -> %v", before.Version.Index, s.Version.Index, before.UpdatedAt, s.UpdatedAt)
	}
	if e.reveal("rotated", 1) != string(v1) || e.reveal("rotated", 2) != string(v2) || e.reveal("rotated", 0) != string(v2) {
		t.Fatal("versions do not hold what was sent")
	}

	e.refused("POST", fmt.Sprintf("/v1.41/secretd/secrets/rotated/update?version=%d", before.Version.Index), api.SecretUpdateRequest{Data: e.canary("stale")}, 409, "~update out of sequence")
	e.refused("POST", "/v1.41/secretd/secrets/rotated/update?version=abc", api.SecretUpdateRequest{Data: e.canary("nan")}, 400, "~invalid version")
	e.refused("POST", "/v1.41/secretd/secrets/rotated/update", api.SecretUpdateRequest{Data: e.canary("neg"), Keep: -1}, 400, "keep must not be negative")
	e.refused("POST", "/v1.41/secretd/secrets/rotated/update", api.SecretUpdateRequest{}, 400, msgBadData)
	e.refused("POST", "/v1.41/secretd/secrets/rotated/update", `{"Data":"eA==","Name":"x"}`, 400, "~unknown field")
	e.refused("POST", "/v1.41/secretd/secrets/nope/update", api.SecretUpdateRequest{Data: e.canary("nf")}, 404, "secret 'nope' not found")
	e.refused("POST", "/v1.41/secretd/secrets/nope/update?version=3", api.SecretUpdateRequest{Data: e.canary("nf")}, 404, "secret 'nope' not found")

	cur := e.inspect("rotated")
	v3 := e.canary("v3")
	r = e.do("POST", fmt.Sprintf("/v1.41/secretd/secrets/rotated/update?version=%d", cur.Version.Index), api.SecretUpdateRequest{Data: v3, Keep: 2})
	r.decode(t, &s)
	if r.code != 200 || s.CurrentVersion != 3 || len(s.Versions) != 2 || s.Versions[0].Version != 2 {
		t.Fatalf("update at current index with keep 2: %d %+v", r.code, s)
	}
	if _, _, err := e.store.Reveal("rotated", 1); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("version 1 still kept after keep=2: %v", err)
	}
	// Every body was checked for data by do; list and inspect once more.
	e.do("GET", "/v1.41/secrets", nil)
	e.inspect("rotated")
}

// failingRotations fails the rotation of one version, as the daemon's
// record of its rotation hook would.
type failingRotations struct{ version int }

func (f failingRotations) Rotated(string, int) *api.Rotation { return nil }

func (f failingRotations) RotationError(_ string, version int) error {
	if version == f.version {
		return errors.New("version 2 of secret 'rotated' is stored but did not reach 1 container, it still reads the previous version: web (no space left on device)")
	}
	return nil
}

// A secret update that did not reach every container is not a success:
// the caller gets the error naming them, though the version is stored.
func TestUpdateReportsFailedRotation(t *testing.T) {
	e := newEnv(t, envOpts{rotations: failingRotations{version: 2}})
	e.create("rotated", nil, e.canary("v1"))
	v2 := e.canary("v2")
	r := e.do("POST", "/secretd/secrets/rotated/update", api.SecretUpdateRequest{Data: v2})
	if r.code < 500 {
		t.Fatalf("update that did not reach a container answered %d %s", r.code, r.body)
	}
	if msg := r.message(t); !strings.Contains(msg, "did not reach 1 container") || !strings.Contains(msg, "web (") {
		t.Errorf("message %q does not name the container", msg)
	}
	if e.reveal("rotated", 0) != string(v2) {
		t.Error("the new version was not stored")
	}
	if r := e.do("POST", "/secretd/secrets/rotated/update", api.SecretUpdateRequest{Data: e.canary("v3")}); r.code != 200 {
		t.Errorf("update that reached everyone: %d %s", r.code, r.body)
	}
}

// TestUpdateVersionIsAtomic sends concurrent updates that all claim the
// same index: the version check exists so that only one of them wins.
func TestUpdateVersionIsAtomic(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.create("contended", nil, e.canary("c"))
	const rounds, writers = 20, 8
	for round := range rounds {
		idx := e.inspect("contended").Version.Index
		var wg sync.WaitGroup
		start := make(chan struct{})
		codes := make([]int, writers)
		for i := range writers {
			wg.Go(func() {
				body, _ := json.Marshal(api.SecretUpdateRequest{Data: []byte(fmt.Sprintf("w%d", i))})
				req := httptest.NewRequest("POST", fmt.Sprintf("/v1.41/secretd/secrets/contended/update?version=%d", idx), bytes.NewReader(body))
				w := httptest.NewRecorder()
				<-start
				e.srv.ServeHTTP(w, req)
				codes[i] = w.Code
			})
		}
		close(start)
		wg.Wait()
		if n := countOf(codes, 200); n != 1 {
			t.Fatalf("BUG: round %d: %d of %d updates at index %d succeeded (codes %v); want exactly 1. "+
				"secretUpdate checks ?version= with Store.Get and then calls Store.Update in a separate transaction, "+
				"so concurrent writers that read the same index all pass the check", round, n, writers, idx, codes)
		}
	}
}

func countOf(s []int, v int) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

func TestUnknownEndpoints(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.create("exists", nil, e.canary("e"))
	for _, c := range []struct{ method, path string }{
		{"GET", "/nope"},
		{"GET", "/v1.41/nope"},
		{"PUT", "/v1.41/secrets"},
		{"PUT", "/secrets"},
		{"POST", "/v1.41/secrets"},
		{"DELETE", "/v1.41/secrets"},
		{"GET", "/v1.41/secrets/exists/update"},
		{"PATCH", "/v1.41/secrets/exists"},
		{"GET", "/v1.41/secretd/unlock"},
		{"POST", "/v1.41/secretd/status"},
		{"GET", "/v1.41/secrets/"},
		{"GET", "/"},
	} {
		e.refused(c.method, c.path, nil, 404, msgNoPage)
	}
}

// TestUncleanPathsGetJSON404 covers what net/http's mux would answer by
// itself, for paths it wants cleaned and for "*": server.go promises the
// Engine's JSON 404 for anything the mux would answer itself.
func TestUncleanPathsGetJSON404(t *testing.T) {
	e := newEnv(t, envOpts{})
	for _, p := range []string{"//secrets", "/v1.41//secrets", "/secrets/./x", "/v1.41/secrets/../secretd/status", "/v1.41/secrets/x/../../secretd/unlock-key", "*"} {
		for _, m := range []string{"GET", "POST"} {
			req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(m + " " + p + " HTTP/1.1\r\nHost: secretd\r\nContent-Length: 0\r\n\r\n")))
			if err != nil {
				t.Fatal(err)
			}
			w := httptest.NewRecorder()
			e.srv.ServeHTTP(w, req)
			var er api.ErrorResponse
			if w.Code != 404 || json.Unmarshal(w.Body.Bytes(), &er) != nil || er.Message != msgNoPage {
				t.Errorf("BUG: %s %s: %d (Location %q) %q; want 404 {\"message\":\"page not found\"}. "+
					"ServeHTTP serves the mux whenever mux.Handler returns a pattern, but for a path the mux wants cleaned "+
					"(and for \"*\") mux.Handler returns the pattern of the cleaned path while the mux itself answers "+
					"with a redirect (a bare 400 for \"*\")",
					m, p, w.Code, w.Header().Get("Location"), w.Body.String())
			}
		}
	}
}

func TestAutolock(t *testing.T) {
	e := newEnv(t, envOpts{autolock: true})
	if e.unlockKey == "" {
		t.Fatal("no unlock key on init")
	}
	e.create("before-lock", map[string]string{"k": "v"}, e.canary("bl"))
	r := e.do("GET", "/v1.41/secretd/unlock-key", nil)
	var uk api.UnlockKeyResponse
	r.decode(t, &uk)
	if r.code != 200 || uk.UnlockKey != e.unlockKey {
		t.Fatalf("unlock-key: %d %+v", r.code, uk)
	}
	if err := e.store.Lock(); err != nil {
		t.Fatal(err)
	}

	e.refused("POST", "/v1.41/secrets/create", swarm.SecretSpec{Annotations: swarm.Annotations{Name: "while-locked"}, Data: e.canary("wl")}, 503, msgLocked)
	e.refused("POST", "/v1.41/secretd/secrets/before-lock/update", api.SecretUpdateRequest{Data: e.canary("wl2")}, 503, msgLocked)
	e.refused("GET", "/v1.41/secretd/unlock-key", nil, 503, msgLocked)
	e.refused("POST", "/v1.41/secretd/unlock-key/rotate", nil, 503, msgLocked)
	e.refused("POST", "/v1.41/secretd/key/rotate", nil, 503, msgLocked)
	// Metadata is stored in the clear so that ls works while locked.
	r = e.do("GET", "/v1.41/secrets", nil)
	var list []api.Secret
	r.decode(t, &list)
	if r.code != 200 || len(list) != 1 || list[0].Spec.Name != "before-lock" {
		t.Fatalf("list while locked: %d %s", r.code, r.body)
	}
	e.inspect("before-lock")
	r = e.do("GET", "/v1.41/secretd/status", nil)
	var st api.Status
	r.decode(t, &st)
	if !st.Locked || !st.Autolock || st.Secrets != 1 {
		t.Errorf("status while locked: %+v", st)
	}

	wrong := "SECDKEY-1-" + base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	e.refused("POST", "/v1.41/secretd/unlock", api.UnlockRequest{UnlockKey: wrong}, 400, "invalid unlock key: it does not open this store")
	e.refused("POST", "/v1.41/secretd/unlock", api.UnlockRequest{UnlockKey: "hunter2"}, 400, "~invalid unlock key")
	e.refused("POST", "/v1.41/secretd/unlock", api.UnlockRequest{UnlockKey: "SECDKEY-1-short"}, 400, "invalid unlock key: it is malformed")
	e.refused("POST", "/v1.41/secretd/unlock", `{"Key":"x"}`, 400, "~unknown field")
	if !e.store.Locked() {
		t.Fatal("a refused unlock opened the store")
	}
	if r := e.do("POST", "/v1.41/secretd/unlock", api.UnlockRequest{UnlockKey: e.unlockKey}); r.code != 204 || len(r.body) != 0 {
		t.Fatalf("unlock: %d %s", r.code, r.body)
	}
	if e.store.Locked() {
		t.Fatal("still locked after unlock")
	}
	e.refused("POST", "/v1.41/secretd/unlock", api.UnlockRequest{UnlockKey: e.unlockKey}, 400, "secretd is not locked")
	e.create("after-unlock", nil, e.canary("au"))

	r = e.do("POST", "/v1.41/secretd/unlock-key/rotate", nil)
	var rot api.UnlockKeyResponse
	r.decode(t, &rot)
	if r.code != 200 || rot.UnlockKey == "" || rot.UnlockKey == e.unlockKey {
		t.Fatalf("unlock-key rotate: %d %s", r.code, r.body)
	}
	r = e.do("GET", "/v1.41/secretd/unlock-key", nil)
	r.decode(t, &uk)
	if uk.UnlockKey != rot.UnlockKey {
		t.Fatalf("unlock-key after rotate is %q, want %q", uk.UnlockKey, rot.UnlockKey)
	}

	r = e.do("POST", "/v1.41/secretd/key/rotate", nil)
	var kr api.KeyRotateResponse
	r.decode(t, &kr)
	if r.code != 200 || kr.Generation != 2 {
		t.Fatalf("key rotate: %d %s", r.code, r.body)
	}
	want := e.dump()
	e.store.Lock()
	e.refused("POST", "/v1.41/secretd/unlock", api.UnlockRequest{UnlockKey: e.unlockKey}, 400, "invalid unlock key: it does not open this store")
	if r := e.do("POST", "/v1.41/secretd/unlock", api.UnlockRequest{UnlockKey: rot.UnlockKey}); r.code != 204 {
		t.Fatalf("unlock with the rotated key: %d %s", r.code, r.body)
	}
	if got := e.dump(); !reflect.DeepEqual(got, want) {
		t.Fatalf("secrets changed across rotation and unlock:\n%+v\n%+v", got, want)
	}
}

func TestKeyFileStore(t *testing.T) {
	e := newEnv(t, envOpts{})
	d1, d2 := e.canary("a"), e.canary("b")
	e.create("kf-a", nil, d1)
	e.create("kf-b", nil, d2)
	e.do("POST", "/v1.41/secretd/secrets/kf-a/update", api.SecretUpdateRequest{Data: e.canary("a2")})
	e.refused("POST", "/v1.41/secretd/unlock", api.UnlockRequest{UnlockKey: "x"}, 400, "secretd is not locked: it was started without --autolock")
	e.refused("GET", "/v1.41/secretd/unlock-key", nil, 400, "~without --autolock")
	e.refused("POST", "/v1.41/secretd/unlock-key/rotate", nil, 400, "~without --autolock")

	want := e.dump()
	for gen := 2; gen <= 3; gen++ {
		r := e.do("POST", "/v1.41/secretd/key/rotate", nil)
		var kr api.KeyRotateResponse
		r.decode(t, &kr)
		if r.code != 200 || kr.Generation != gen {
			t.Fatalf("key rotate: %d %s, want generation %d", r.code, r.body, gen)
		}
		if got := e.dump(); !reflect.DeepEqual(got, want) {
			t.Fatalf("after KEK rotation to generation %d:\n%+v\nwant %+v", gen, got, want)
		}
	}
	if err := e.store.Verify(); err != nil {
		t.Fatal(err)
	}
}

func TestStatusAndTasks(t *testing.T) {
	e := newEnv(t, envOpts{status: func(st *api.Status) {
		st.Engine, st.Mounts, st.Resyncs = "unix:///var/run/docker.sock", 3, 7
	}})
	e.create("s1", nil, e.canary("s1"))
	r := e.do("GET", "/v1.41/secretd/status", nil)
	if r.code != 200 {
		t.Fatalf("status: %d %s", r.code, r.body)
	}
	var raw map[string]any
	r.decode(t, &raw)
	for _, k := range []string{"Version", "Locked", "Autolock", "Store", "Engine", "Secrets", "Mounts", "MountsServed", "MountP50", "MountP99", "Resyncs"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("status has no %s: %s", k, r.body)
		}
	}
	if _, ok := raw["EngineError"]; ok {
		t.Errorf("status shows an empty EngineError: %s", r.body)
	}
	var st api.Status
	r.decode(t, &st)
	if st.Version != "test" || st.Locked || st.Autolock || st.Secrets != 1 || st.Engine != "unix:///var/run/docker.sock" || st.Mounts != 3 || st.Resyncs != 7 {
		t.Errorf("status: %+v", st)
	}

	r = e.do("GET", "/v1.41/secretd/tasks", nil)
	if r.code != 200 || strings.TrimSpace(string(r.body)) != "[]" {
		t.Errorf("empty task table: %d %q, want []", r.code, r.body)
	}
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	e.tasks.mu.Lock()
	e.tasks.tasks = []api.Task{{
		ContainerID: "c0ffee", ContainerName: "web", MountID: "m1", Mount: "/run/secretd/mounts/m1", Since: since,
		Secrets: []api.TaskSecret{{ID: "id1", Name: "s1", Version: 1, Target: "s1"}, {ID: "id1", Name: "s1", Version: 1, Pinned: true, Target: "pinned"}},
	}}
	e.tasks.mu.Unlock()
	r = e.do("GET", "/v1.41/secretd/tasks", nil)
	var generic []map[string]any
	r.decode(t, &generic)
	if len(generic) != 1 {
		t.Fatalf("tasks: %s", r.body)
	}
	for _, k := range []string{"ContainerID", "ContainerName", "MountID", "Mount", "Since", "Secrets"} {
		if _, ok := generic[0][k]; !ok {
			t.Errorf("task has no %s: %s", k, r.body)
		}
	}
	secs := generic[0]["Secrets"].([]any)
	if _, ok := secs[0].(map[string]any)["Pinned"]; ok {
		t.Errorf("unpinned secret shows Pinned: %s", r.body)
	}
	var tasks []api.Task
	r.decode(t, &tasks)
	if !tasks[0].Since.Equal(since) || !tasks[0].Secrets[1].Pinned || tasks[0].ContainerName != "web" {
		t.Errorf("tasks: %+v", tasks)
	}
}

// TestNoTasks covers the API-only configuration, where nothing can claim a
// secret and ps shows an empty table.
func TestNoTasks(t *testing.T) {
	dir := t.TempDir()
	b, err := bolt.Open(filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := store.Open(b, store.Config{KeyFile: filepath.Join(dir, "key")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv := server.New(server.Config{Store: s, KeyFile: filepath.Join(dir, "key")})
	if _, err := s.Create(store.Spec{Name: "x", Data: []byte("y")}); err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, httptest.NewRequest("GET", "/v1.41/secretd/tasks", nil))
	if w.Code != 200 || strings.TrimSpace(w.Body.String()) != "[]" {
		t.Errorf("tasks: %d %q", w.Code, w.Body)
	}
	w = httptest.NewRecorder()
	srv.ServeHTTP(w, httptest.NewRequest("DELETE", "/v1.41/secrets/x", nil))
	if w.Code != 204 {
		t.Errorf("remove: %d %q", w.Code, w.Body)
	}
}

// serveUnix serves srv on a unix socket the way the daemon does, for the
// Go client.
func serveUnix(t *testing.T, srv *server.Server) *client.Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	c, err := client.New("unix://"+sock, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return c
}

func TestClient(t *testing.T) {
	e := newEnv(t, envOpts{autolock: true})
	c := serveUnix(t, e.srv)
	ctx := context.Background()
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	d1 := e.canary("c1")
	id, err := c.SecretCreate(ctx, "via-client", map[string]string{"team": "a"}, d1)
	if err != nil || len(id) != 25 {
		t.Fatalf("create: %q %v", id, err)
	}
	if _, err := c.SecretCreate(ctx, "via-client", nil, e.canary("c1b")); !client.IsConflict(err) || err.Error() != "secret via-client already exists" {
		t.Errorf("duplicate create: %v", err)
	}
	if _, err := c.SecretCreate(ctx, "bad name", nil, e.canary("c1c")); err == nil || err.Error() != msgBadName {
		t.Errorf("bad name: %v", err)
	}
	list, err := c.SecretList(ctx, filters.NewArgs(filters.Arg("label", "team=a")))
	if err != nil || len(list) != 1 || list[0].ID != id {
		t.Fatalf("list: %+v %v", list, err)
	}
	if _, err := c.SecretList(ctx, filters.NewArgs(filters.Arg("bogus", "1"))); err == nil || err.Error() != "invalid filter 'bogus'" {
		t.Errorf("list with bogus filter: %v", err)
	}
	s, err := c.SecretInspect(ctx, id[:6])
	if err != nil || s.Spec.Name != "via-client" {
		t.Fatalf("inspect: %+v %v", s, err)
	}
	if _, err := c.SecretInspect(ctx, "missing"); !client.IsNotFound(err) || err.Error() != "secret 'missing' not found" {
		t.Errorf("inspect missing: %v", err)
	}
	d2 := e.canary("c2")
	s2, err := c.SecretUpdate(ctx, "via-client", d2, 0)
	if err != nil || s2.CurrentVersion != 2 {
		t.Fatalf("update: %+v %v", s2, err)
	}
	if _, err := c.SecretUpdateAt(ctx, "via-client", s.Version.Index, e.canary("c3"), 0); !client.IsConflict(err) {
		t.Errorf("stale update: %v", err)
	}
	if s3, err := c.SecretUpdateAt(ctx, "via-client", s2.Version.Index, e.canary("c4"), 0); err != nil || s3.CurrentVersion != 3 {
		t.Errorf("update at index: %+v %v", s3, err)
	}
	if got := e.reveal("via-client", 2); got != string(d2) {
		t.Errorf("version 2 holds %q", got)
	}

	key, err := c.UnlockKey(ctx)
	if err != nil || key != e.unlockKey {
		t.Fatalf("unlock key: %q %v", key, err)
	}
	e.store.Lock()
	if _, err := c.SecretCreate(ctx, "locked", nil, e.canary("l")); !client.IsLocked(err) || err.Error() != msgLocked {
		t.Errorf("create while locked: %v", err)
	}
	if err := c.Unlock(ctx, "SECDKEY-1-"+base64.RawURLEncoding.EncodeToString(make([]byte, 32))); err == nil {
		t.Error("unlock with a wrong key succeeded")
	}
	if err := c.Unlock(ctx, key); err != nil {
		t.Fatalf("unlock: %v", err)
	}
	newKey, err := c.RotateUnlockKey(ctx)
	if err != nil || newKey == key {
		t.Fatalf("rotate unlock key: %q %v", newKey, err)
	}
	if gen, err := c.RotateKey(ctx); err != nil || gen != 2 {
		t.Fatalf("rotate key: %d %v", gen, err)
	}
	e.tasks.set(map[string][]string{"via-client": {"db"}}, nil)
	if err := c.SecretRemove(ctx, "via-client"); !client.IsConflict(err) || !strings.Contains(err.Error(), "container: db") {
		t.Errorf("remove in use: %v", err)
	}
	e.tasks.set(nil, nil)
	if err := c.SecretRemove(ctx, "via-client"); err != nil {
		t.Fatalf("remove: %v", err)
	}
	tasks, err := c.Tasks(ctx)
	if err != nil || tasks == nil || len(tasks) != 0 {
		t.Errorf("tasks: %#v %v", tasks, err)
	}
	st, err := c.Status(ctx)
	if err != nil || !st.Autolock || st.Locked || st.Secrets != 0 {
		t.Errorf("status: %+v %v", st, err)
	}
}

// A CLI newer than its daemon (upgraded binary, daemon not yet restarted)
// meets a 404 for the table; it lists through the Docker-shaped endpoint.
func TestClientTableFromAnOlderDaemon(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.create("labelled", map[string]string{"k": "v"}, e.canary("l"))
	e.create("plain", nil, e.canary("p"))
	older := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/secretd/secrets") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"message":"page not found"}`))
			return
		}
		e.srv.ServeHTTP(w, r)
	})
	sock := filepath.Join(t.TempDir(), "old.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: older}
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	c, err := client.New("unix://"+sock, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := c.SecretTable(context.Background(), filters.NewArgs())
	if err != nil {
		t.Fatal(err)
	}
	current := serveUnix(t, e.srv)
	want, err := current.SecretTable(context.Background(), filters.NewArgs())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) || len(got.IDs) != 2 || got.Labels[got.IDs[0]]["k"] != "v" {
		t.Errorf("table through the Docker list:\n%+v\nfrom the table endpoint:\n%+v", got, want)
	}
}

// TestUpdateIfChanged: re-sending the current data stores nothing (no
// rotation reaches containers); different data is a new version.
func TestUpdateIfChanged(t *testing.T) {
	e := newEnv(t, envOpts{})
	v1 := e.canary("ic1")
	e.create("imported", nil, v1)
	before := e.inspect("imported")
	r := e.do("POST", "/v1.41/secretd/secrets/imported/update", api.SecretUpdateRequest{Data: v1, IfChanged: true})
	var s api.Secret
	r.decode(t, &s)
	if r.code != 200 || s.CurrentVersion != 1 || s.Version.Index != before.Version.Index {
		t.Fatalf("same data: %d %+v, want version 1 at index %d", r.code, s, before.Version.Index)
	}
	v2 := e.canary("ic2")
	r = e.do("POST", "/v1.41/secretd/secrets/imported/update", api.SecretUpdateRequest{Data: v2, IfChanged: true})
	r.decode(t, &s)
	if r.code != 200 || s.CurrentVersion != 2 || e.reveal("imported", 0) != string(v2) {
		t.Fatalf("changed data: %d %+v", r.code, s)
	}
	e.refused("POST", "/v1.41/secretd/secrets/nope/update", api.SecretUpdateRequest{Data: v2, IfChanged: true}, 404, "secret 'nope' not found")
}
