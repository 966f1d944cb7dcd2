package server_test

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/errdefs"
	"github.com/secretd/secretd/internal/store"
)

// TestConfigsDockerGoClient drives the config endpoints with the Docker Go
// client, as `docker config` does: create, inspect with the data as Swarm
// shows it, list with filters, label updates, rm refused while in use.
func TestConfigsDockerGoClient(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := dockerClient(t, e.srv)
	ctx := context.Background()
	site := []byte("server {\n    listen 443 ssl;\n}\n")
	spec := swarm.ConfigSpec{Annotations: swarm.Annotations{Name: "site.conf", Labels: map[string]string{"app": "nginx"}}, Data: site}
	created, err := c.ConfigCreate(ctx, spec)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if _, err := c.ConfigCreate(ctx, spec); !cerrdefs.IsConflict(err) || err.Error() != "Error response from daemon: config site.conf already exists" {
		t.Errorf("duplicate create: %v", err)
	}
	// A secret may share the name, as in Swarm.
	if _, err := c.SecretCreate(ctx, swarm.SecretSpec{Annotations: swarm.Annotations{Name: "site.conf"}, Data: e.canary("s")}); err != nil {
		t.Errorf("secret of a config's name: %v", err)
	}

	got, _, err := c.ConfigInspectWithRaw(ctx, "site.conf")
	if err != nil {
		t.Fatalf("inspect: %v", err)
	}
	if got.ID != created.ID || !bytes.Equal(got.Spec.Data, site) || got.Spec.Labels["app"] != "nginx" || got.Spec.Templating != nil {
		t.Errorf("inspect: %+v", got)
	}
	if _, _, err := c.ConfigInspectWithRaw(ctx, "nosuch"); !cerrdefs.IsNotFound(err) || err.Error() != "Error response from daemon: config 'nosuch' not found" {
		t.Errorf("inspect missing: %v", err)
	}

	tpl, err := c.ConfigCreate(ctx, swarm.ConfigSpec{Annotations: swarm.Annotations{Name: "app.ini"},
		Data: []byte(`host={{ .Node.Hostname }}`), Templating: &swarm.Driver{Name: "golang"}})
	if err != nil {
		t.Fatalf("create template: %v", err)
	}
	list := func(kv ...string) []string {
		t.Helper()
		f := filters.NewArgs()
		for i := 0; i < len(kv); i += 2 {
			f.Add(kv[i], kv[i+1])
		}
		l, err := c.ConfigList(ctx, swarm.ConfigListOptions{Filters: f})
		if err != nil {
			t.Fatalf("list %v: %v", kv, err)
		}
		var names []string
		for _, x := range l {
			if len(x.Spec.Data) == 0 {
				t.Errorf("list: config %s without its data", x.Spec.Name)
			}
			names = append(names, x.Spec.Name)
		}
		return names
	}
	for _, tc := range []struct {
		filter []string
		want   []string
	}{
		{nil, []string{"app.ini", "site.conf"}},
		{[]string{"name", "site"}, []string{"site.conf"}},
		{[]string{"id", tpl.ID[:8]}, []string{"app.ini"}},
		{[]string{"label", "app=nginx"}, []string{"site.conf"}},
	} {
		if got := list(tc.filter...); !slices.Equal(got, tc.want) {
			t.Errorf("list %v = %v, want %v", tc.filter, got, tc.want)
		}
	}
	ti, _, err := c.ConfigInspectWithRaw(ctx, "app.ini")
	if err != nil || ti.Spec.Templating == nil || ti.Spec.Templating.Name != "golang" || string(ti.Spec.Data) != `host={{ .Node.Hostname }}` {
		t.Errorf("template inspect: %+v, %v", ti, err)
	}

	// Label updates send back the spec that was read, data included.
	upd := got.Spec
	upd.Labels = map[string]string{"app": "nginx", "env": "prod"}
	if err := c.ConfigUpdate(ctx, got.ID, got.Version, upd); err != nil {
		t.Fatalf("label update: %v", err)
	}
	ti.Spec.Labels = map[string]string{"x": "y"}
	if err := c.ConfigUpdate(ctx, ti.ID, ti.Version, ti.Spec); err != nil {
		t.Fatalf("label update of a template: %v", err)
	}
	after, _, _ := c.ConfigInspectWithRaw(ctx, "site.conf")
	if after.Spec.Labels["env"] != "prod" || !bytes.Equal(after.Spec.Data, site) || after.Version.Index == got.Version.Index {
		t.Errorf("after label update: %+v", after)
	}
	for name, bad := range map[string]swarm.ConfigSpec{
		"new data": {Annotations: after.Spec.Annotations, Data: []byte("other")},
		"new name": {Annotations: swarm.Annotations{Name: "renamed"}, Data: site},
		"template": {Annotations: after.Spec.Annotations, Data: site, Templating: &swarm.Driver{Name: "golang"}},
	} {
		before := e.dump()
		if err := c.ConfigUpdate(ctx, after.ID, after.Version, bad); err == nil || !strings.Contains(err.Error(), "only updates to Labels are allowed") {
			t.Errorf("update with %s: %v", name, err)
		}
		if !slices.EqualFunc(before, e.dump(), func(a, b dumpEntry) bool { return a.Secret.ID == b.Secret.ID && a.Secret.Index == b.Secret.Index }) {
			t.Errorf("refused update with %s changed the store", name)
		}
	}
	if err := c.ConfigUpdate(ctx, after.ID, got.Version, after.Spec); !cerrdefs.IsConflict(err) || !strings.Contains(err.Error(), "update out of sequence: config site.conf") {
		t.Errorf("update at a stale version: %v", err)
	}

	// rm is refused while a container uses the config, naming it; the
	// secret of the same name is not the config.
	e.tasks.set(map[string][]string{"config:site.conf": {"web"}}, nil)
	if err := c.ConfigRemove(ctx, "site.conf"); !cerrdefs.IsConflict(err) || err.Error() != "Error response from daemon: config 'site.conf' is in use by the following container: web" {
		t.Errorf("rm in use: %v", err)
	}
	if err := c.SecretRemove(ctx, "site.conf"); err != nil {
		t.Errorf("rm of the secret that shares the in-use config's name: %v", err)
	}
	e.tasks.set(nil, nil)
	if err := c.ConfigRemove(ctx, created.ID); err != nil {
		t.Fatalf("rm: %v", err)
	}
	if got := list(); !slices.Equal(got, []string{"app.ini"}) {
		t.Errorf("after rm: %v", got)
	}
}

// TestConfigRefusals: Swarm's size and name rules, templates that cannot
// render, and bodies over the cap; each refused with its message and
// nothing stored.
func TestConfigRefusals(t *testing.T) {
	e := newEnv(t, envOpts{})
	const create = "/v1.41/configs/create"
	cfg := func(name string, data []byte, tpl *swarm.Driver) swarm.ConfigSpec {
		return swarm.ConfigSpec{Annotations: swarm.Annotations{Name: name}, Data: data, Templating: tpl}
	}
	golang := &swarm.Driver{Name: "golang"}
	big := bytes.Repeat([]byte("c"), store.MaxConfigSize-1)
	if r := e.do("POST", create, cfg("big", big, nil)); r.code != http.StatusCreated {
		t.Fatalf("config of 1000 KiB - 1 byte: %d %s", r.code, r.body)
	}
	e.refused("POST", create, cfg("toobig", append(big, 'x'), nil), 400, "config data must be larger than 0 and less than 1024000 bytes")
	e.refused("POST", create, cfg("empty", nil, nil), 400, "config data must be larger than 0 and less than 1024000 bytes")
	e.refused("POST", create, cfg("-bad", []byte("x"), nil), 400, "invalid name, only 64 [a-zA-Z0-9-_.] characters allowed, and the start and end character must be [a-zA-Z0-9]")
	e.refused("POST", create, cfg("t", []byte(`{{ lookup "x" }}`), golang), 400, `~function "lookup" not defined`)
	e.refused("POST", create, cfg("t", []byte(`{{ range 99999999999 }}{{ end }}`), golang), 400, "~range over a number is not allowed")
	e.refused("POST", create, cfg("t", []byte("x"), &swarm.Driver{Name: "jinja"}), 400, `unknown template driver "jinja": the only one is golang`)
	e.refused("POST", create, `{"Name":"d","Data":"eA==","Driver":{"Name":"x"}}`, 400, `invalid JSON: unknown field "Driver"`)
	// A secret's body stays capped at 1 MiB: only configs get more.
	e.refused("POST", "/v1.41/secrets/create", swarm.SecretSpec{Annotations: swarm.Annotations{Name: "s"}, Data: big}, 413, "request body is larger than 1048576 bytes")
	// A rotation of a template to text that does not parse.
	if r := e.do("POST", create, cfg("tpl", []byte(`{{ .Task.Name }}`), golang)); r.code != http.StatusCreated {
		t.Fatalf("create template: %d %s", r.code, r.body)
	}
	e.refused("POST", "/v1.41/secretd/configs/tpl/update", api.ConfigUpdateRequest{Data: []byte(`{{ nope }}`)}, 400, "~the new data of config 'tpl' is not a valid template")
}

// rendersFunc is a server.Renders over a function.
type rendersFunc func(ctx context.Context, sec store.Secret, data []byte) error

func (f rendersFunc) CheckUpdate(ctx context.Context, sec store.Secret, data []byte) error {
	return f(ctx, sec, data)
}

// TestConfigRotation: secretd's own update path stores a new version in
// place; one that a running container's template could not render is
// refused with the renderer's words and stores nothing.
func TestConfigRotation(t *testing.T) {
	var asked []string
	renders := rendersFunc(func(_ context.Context, sec store.Secret, data []byte) error {
		asked = append(asked, string(sec.Kind)+":"+sec.Name)
		if string(data) == "breaks" {
			return errdefs.Errorf(errdefs.ErrInvalid, "container web: template config 'dsn' ... would not render")
		}
		return nil
	})
	e := newEnv(t, envOpts{renders: renders})
	if r := e.do("POST", "/v1.41/configs/create", swarm.ConfigSpec{Annotations: swarm.Annotations{Name: "app.conf"}, Data: []byte("v1")}); r.code != http.StatusCreated {
		t.Fatal(r.code)
	}
	r := e.do("POST", "/v1.41/secretd/configs/app.conf/update", api.ConfigUpdateRequest{Data: []byte("v2"), Keep: 2})
	var got api.Config
	r.decode(t, &got)
	if r.code != http.StatusOK || got.CurrentVersion != 2 || got.Spec.Data != nil {
		t.Fatalf("update: %d %+v", r.code, got)
	}
	if data, _, err := e.store.Configs().Reveal("app.conf", 0); err != nil || string(data) != "v2" {
		t.Fatalf("after update: %q, %v", data, err)
	}
	e.refused("POST", "/v1.41/secretd/configs/app.conf/update", api.ConfigUpdateRequest{Data: []byte("breaks")}, 400, "container web: template config 'dsn' ... would not render")
	if !slices.Equal(asked, []string{"config:app.conf", "config:app.conf"}) {
		t.Errorf("renders asked about %v", asked)
	}
	// The same check guards secret rotations.
	e.create("db", nil, e.canary("db"))
	e.refused("POST", "/v1.41/secretd/secrets/db/update", api.SecretUpdateRequest{Data: []byte("breaks")}, 400, "~would not render")
	// IfChanged stores nothing for the same data.
	r = e.do("POST", "/v1.41/secretd/configs/app.conf/update", api.ConfigUpdateRequest{Data: []byte("v2"), IfChanged: true})
	r.decode(t, &got)
	if got.CurrentVersion != 2 {
		t.Errorf("IfChanged with the same data: version %d", got.CurrentVersion)
	}
}

// TestConfigTableWhileLocked: `secretd config ls` lists while the store is
// locked; what needs the data says the store is locked.
func TestConfigTableWhileLocked(t *testing.T) {
	e := newEnv(t, envOpts{autolock: true})
	if r := e.do("POST", "/v1.41/configs/create", swarm.ConfigSpec{Annotations: swarm.Annotations{Name: "a"}, Data: []byte("x"), Templating: &swarm.Driver{Name: "golang"}}); r.code != http.StatusCreated {
		t.Fatal(r.code)
	}
	if err := e.store.Lock(); err != nil {
		t.Fatal(err)
	}
	r := e.do("GET", "/v1.41/secretd/configs", nil)
	var tab api.SecretTable
	r.decode(t, &tab)
	if r.code != http.StatusOK || len(tab.Names) != 1 || tab.Names[0] != "a" || tab.Templates[tab.IDs[0]] != "golang" {
		t.Errorf("table while locked: %d %+v", r.code, tab)
	}
	e.refused("GET", "/v1.41/configs/a", nil, 503, "~locked")
	e.refused("GET", "/v1.41/configs", nil, 503, "~locked")
	if r := e.do("GET", "/v1.41/secretd/secrets", nil); r.code != http.StatusOK {
		t.Errorf("secret table: %d", r.code)
	}
	var secrets api.SecretTable
	e.do("GET", "/v1.41/secretd/secrets", nil).decode(t, &secrets)
	if len(secrets.Names) != 0 {
		t.Errorf("a config listed as a secret: %+v", secrets)
	}
}
