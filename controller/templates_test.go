package controller_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/controller"
	"github.com/secretd/secretd/errdefs"
	"github.com/secretd/secretd/internal/store"
)

var testNode = controller.Node{ID: "n0de", Hostname: "host1"}

func withNode(c *controller.Config) {
	c.Node = func(context.Context) (controller.Node, error) { return testNode, nil }
}

func (e *env) config(t testing.TB, name, data string, tpl bool) store.Secret {
	t.Helper()
	spec := store.Spec{Name: name, Data: []byte(data)}
	if tpl {
		spec.Template = store.TemplateGolang
	}
	s, err := e.store.Configs().Create(spec)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *env) template(t testing.TB, name, data string) store.Secret {
	t.Helper()
	s, err := e.store.Create(store.Spec{Name: name, Data: []byte(data), Template: store.TemplateGolang})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *env) volume(t testing.TB, name string, opts map[string]string) {
	t.Helper()
	if err := e.ctrl.CreateVolume(name, opts); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// rotate stores a new version through the store and pushes it, as the
// daemon's update hook does.
func (e *env) rotate(t testing.TB, view *store.Store, name, data string) (int, error) {
	t.Helper()
	sec, err := view.Update(name, []byte(data), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	rot, err := e.ctrl.Rotate(context.Background(), sec)
	return rot.Updated, err
}

// TestConfigsMount: a volume's configs option mounts configs, which share
// their names with secrets but not their records; ps and in-use answers
// tell them apart.
func TestConfigsMount(t *testing.T) {
	e := newEnv(t, 0)
	e.secret(t, "site.conf", "a secret")
	e.config(t, "site.conf", "server {}", false)
	e.volume(t, "v1", map[string]string{controller.OptionSecrets: "site.conf", controller.OptionConfigs: "source=site.conf,target=conf/site.conf,mode=0440"})
	dir := e.mount(t, "v1", "m1")
	if got := readFile(t, filepath.Join(dir, "site.conf")); got != "a secret" {
		t.Errorf("secret file: %q", got)
	}
	if got := readFile(t, filepath.Join(dir, "conf/site.conf")); got != "server {}" {
		t.Errorf("config file: %q", got)
	}
	if fi, err := os.Stat(filepath.Join(dir, "conf/site.conf")); err != nil || fi.Mode().Perm() != 0o440 {
		t.Errorf("config mode: %v, %v", fi.Mode(), err)
	}
	tasks := e.ctrl.Tasks()
	if len(tasks) != 1 || len(tasks[0].Secrets) != 2 || tasks[0].Secrets[0].Kind != "" || tasks[0].Secrets[1].Kind != "config" {
		t.Fatalf("tasks: %+v", tasks)
	}
	// Rotating the config rewrites only its file.
	if n, err := e.rotate(t, e.store.Configs(), "site.conf", "server { listen 443; }"); err != nil || n != 1 {
		t.Fatalf("rotate config: %d, %v", n, err)
	}
	if got := readFile(t, filepath.Join(dir, "conf/site.conf")); got != "server { listen 443; }" {
		t.Errorf("config after rotation: %q", got)
	}
	e.engine.Set(ctr("c1", "web", container.StateRunning, 1, "", "v1"))
	cfg, _ := e.store.Configs().Get("site.conf")
	users, err := e.ctrl.Users(context.Background(), cfg)
	if err != nil || !slices.Equal(users, []string{"web"}) {
		t.Errorf("users of the config: %v, %v", users, err)
	}
	e.store.Configs().Remove("site.conf", nil)
	sec, _ := e.store.Get("site.conf")
	other, _ := e.store.Create(store.Spec{Name: "other", Data: []byte("x")})
	if users, err := e.ctrl.Users(context.Background(), other); err != nil || len(users) != 0 {
		t.Errorf("users of an unused secret: %v, %v", users, err)
	}
	if users, err := e.ctrl.Users(context.Background(), sec); err != nil || !slices.Equal(users, []string{"web"}) {
		t.Errorf("users of the secret: %v, %v", users, err)
	}
}

// TestTemplateRendersAndFollowsRotation: a DSN rendered from a secret is
// in the mount; rotating the secret renders it again in place, and ps
// tells what the rendering read.
func TestTemplateRendersAndFollowsRotation(t *testing.T) {
	e := newEnv(t, 0)
	e.secret(t, "db_password", "hunter2")
	e.template(t, "dsn", `dsn=app:{{ secret "db_password" }}@db`)
	e.volume(t, "v1", map[string]string{controller.OptionSecrets: "db_password;dsn"})
	dir := e.mount(t, "v1", "m1")
	if got := readFile(t, filepath.Join(dir, "dsn")); got != "dsn=app:hunter2@db" {
		t.Fatalf("rendered: %q", got)
	}
	tasks := e.ctrl.Tasks()
	if reads := tasks[0].Secrets[1].Reads; !slices.Equal(reads, []string{"secret:db_password@1"}) {
		t.Errorf("reads: %v", reads)
	}
	if n, err := e.rotate(t, e.store, "db_password", "s3cret"); err != nil || n != 1 {
		t.Fatalf("rotate: %d, %v", n, err)
	}
	if got := readFile(t, filepath.Join(dir, "dsn")); got != "dsn=app:s3cret@db" {
		t.Errorf("after rotation: %q", got)
	}
	// A new version of the template itself renders too.
	if _, err := e.rotate(t, e.store, "dsn", `postgres://app:{{ secret "db_password" }}@db`); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(dir, "dsn")); got != "postgres://app:s3cret@db" {
		t.Errorf("after the template's rotation: %q", got)
	}
}

// TestTemplatePinnedStaysPut: a rendering that reads a pinned version
// does not follow a rotation.
func TestTemplatePinnedStaysPut(t *testing.T) {
	e := newEnv(t, 0)
	e.secret(t, "db_password", "v1")
	e.template(t, "dsn", `{{ secret "db_password" }}`)
	e.volume(t, "v1", map[string]string{controller.OptionSecrets: "db_password@1;dsn"})
	dir := e.mount(t, "v1", "m1")
	if n, err := e.rotate(t, e.store, "db_password", "v2"); err != nil || n != 0 {
		t.Fatalf("rotate: %d, %v", n, err)
	}
	if got := readFile(t, filepath.Join(dir, "dsn")); got != "v1" {
		t.Errorf("pinned rendering: %q", got)
	}
}

// TestTemplateRefusedAtMount: a template that cannot render fails the
// Mount, naming the template and what it misses; nothing stays mounted
// and no secret reaches the error.
func TestTemplateRefusedAtMount(t *testing.T) {
	const canary = "canary-7f3e"
	for _, c := range []struct {
		name  string
		setup func(e *env)
		want  string
	}{
		{"missing secret", func(e *env) {
			e.template(t, "dsn", `{{ secret "db_password" }}`)
			e.volume(t, "v", map[string]string{controller.OptionSecrets: "dsn"})
		}, `template secret 'dsn' (target dsn) reads secret "db_password", but the container declares no secret with that target`},
		{"loop", func(e *env) {
			e.config(t, "a", `{{ config "b" }}`, true)
			e.config(t, "b", `{{ config "a" }}`, true)
			e.volume(t, "v", map[string]string{controller.OptionConfigs: "a;b"})
		}, "templates read each other in a loop: config 'a' reads config 'b' reads config 'a'"},
		{"over the cap", func(e *env) {
			e.secret(t, "big", strings.Repeat("x", 300<<10))
			e.template(t, "twice", `{{ secret "big" }}{{ secret "big" }}`)
			e.volume(t, "v", map[string]string{controller.OptionSecrets: "big;twice"})
		}, "renders to more than a secret may hold (it must be under 512000 bytes)"},
		{"secret never in the error", func(e *env) {
			e.secret(t, "pw", canary)
			e.config(t, "c", `{{ secret (secret "pw") }}`, true)
			e.volume(t, "v", map[string]string{controller.OptionSecrets: "pw", controller.OptionConfigs: "c"})
		}, "the target is not shown"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, 0)
			c.setup(e)
			_, err := e.ctrl.Mount(context.Background(), "v", "m1")
			if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("mount: %v, want an invalid-input error with %q", err, c.want)
			}
			if strings.Contains(err.Error(), canary) {
				t.Fatalf("the error holds the secret: %v", err)
			}
			if left := mountsUnder(t, e.root); len(left) != 0 {
				t.Errorf("still mounted: %v", left)
			}
			if tasks := e.ctrl.Tasks(); len(tasks) != 0 {
				t.Errorf("tasks: %+v", tasks)
			}
		})
	}
}

// TestCheckUpdate: an update that a running template could not render is
// refused before anything is stored, naming the container and template.
func TestCheckUpdate(t *testing.T) {
	e := newEnv(t, 0)
	e.secret(t, "db_password", "hunter2")
	tpl := e.template(t, "dsn", `{{ secret "db_password" }}`)
	e.volume(t, "v1", map[string]string{controller.OptionSecrets: "db_password;dsn"})
	e.engine.Set(ctr("c1", "web", container.StateRunning, 1, "", "v1"))
	e.mount(t, "v1", "m1")
	err := e.ctrl.CheckUpdate(context.Background(), tpl, []byte(`{{ secret "nope" }}`))
	if err == nil || !strings.Contains(err.Error(), "secret 'dsn' was not updated") || !strings.Contains(err.Error(), `reads secret "nope"`) || !strings.Contains(err.Error(), "1 running container") {
		t.Fatalf("CheckUpdate with a broken template: %v", err)
	}
	db, _ := e.store.Get("db_password")
	if err := e.ctrl.CheckUpdate(context.Background(), db, []byte("fine")); err != nil {
		t.Errorf("CheckUpdate of a secret the template reads: %v", err)
	}
	other := e.secret(t, "other", "x")
	if err := e.ctrl.CheckUpdate(context.Background(), other, []byte(`{{ nope }}`)); err != nil {
		t.Errorf("CheckUpdate of a secret no template reads: %v", err)
	}
}

// TestTemplateContext: .Task, .Service and .Node come from the container
// that uses the volume and from the daemon's node; a volume used by two
// containers has no single context.
func TestTemplateContext(t *testing.T) {
	e := newEnv(t, 0, withNode)
	e.config(t, "who", `{{ .Task.Name }} {{ .Service.Name }} {{ .Task.Slot }} {{ .Node.Hostname }} {{ .Service.Labels.team }}`, true)
	e.volume(t, "v1", map[string]string{controller.OptionConfigs: "who"})
	web := ctr("c1", "web", container.StateCreated, 1, "", "v1")
	web.Labels["team"] = "blue"
	e.engine.Set(web)
	dir := e.mount(t, "v1", "m1")
	if got := readFile(t, filepath.Join(dir, "who")); got != "web web n0de host1 blue" {
		t.Errorf("context: %q", got)
	}
	e.volume(t, "v2", map[string]string{controller.OptionConfigs: "who"})
	e.engine.Set(ctr("c2", "a", container.StateCreated, 1, "", "v2"), ctr("c3", "b", container.StateCreated, 2, "", "v2"))
	if _, err := e.ctrl.Mount(context.Background(), "v2", "m2"); err == nil || !strings.Contains(err.Error(), "volume v2 is used by 2 containers") {
		t.Errorf("shared volume: %v", err)
	}
}

// TestTemplateEnv: a template's env is the container's, read by an inspect
// after the first Mount needed it (an inspect during a start waits for
// it): that Mount is refused, saying so, and the next one renders.
func TestTemplateEnv(t *testing.T) {
	e := newEnv(t, 0, withNode)
	e.engine.SetHostnames(map[string]string{"c1": "h"})
	e.engine.SetEnv("c1", []string{"REGION=eu-west", "PATH=/bin"})
	e.config(t, "region", `region={{ env "REGION" }}`, true)
	e.volume(t, "v1", map[string]string{controller.OptionConfigs: "region"})
	e.engine.Set(ctr("c1", "web", container.StateCreated, 1, "", "v1"))
	if _, err := e.ctrl.Mount(context.Background(), "v1", "m1"); err == nil || !strings.Contains(err.Error(), `reads the container's environment (env "REGION")`) || !strings.Contains(err.Error(), "start the container again") {
		t.Fatalf("first mount: %v", err)
	}
	e.ctrl.WaitLearning()
	dir := e.mount(t, "v1", "m2")
	if got := readFile(t, filepath.Join(dir, "region")); got != "region=eu-west" {
		t.Errorf("env: %q", got)
	}
}

// TestTemplateScope: a template in a one-file volume reads a secret of
// another volume of its container, through the volume's scope, and
// follows its rotation (a bound file at the container's next start).
func TestTemplateScope(t *testing.T) {
	e := newEnv(t, 0)
	e.secret(t, "db_password", "hunter2")
	e.config(t, "app.ini", `[db]
password = {{ secret "db_password" }}
`, true)
	scope := "source=db_password,target=db_password,uid=0,gid=0,mode=0444;config=app.ini,target=/etc/app/app.ini,uid=0,gid=0,mode=0444"
	e.volume(t, "secrets", map[string]string{controller.OptionSecrets: "db_password", controller.OptionScope: scope})
	e.volume(t, "file", map[string]string{controller.OptionConfigs: "source=app.ini,target=app.ini", "file": "app.ini", controller.OptionScope: scope})
	dir := e.mount(t, "file", "m1")
	if got := readFile(t, filepath.Join(dir, "app.ini")); got != "[db]\npassword = hunter2\n" {
		t.Fatalf("rendered through the scope: %q", got)
	}
	for _, bad := range []map[string]string{
		{controller.OptionScope: scope},
		{controller.OptionSecrets: "x", controller.OptionScope: "source=x,target=../y"},
		{controller.OptionConfigs: "a", controller.OptionSecrets: "source=b,target=a"},
	} {
		if err := e.ctrl.CreateVolume("bad", bad); err == nil {
			t.Errorf("volume with options %v accepted", bad)
		}
	}
}

// TestLiveConfigGrant: --config-add and --config-rm change a running
// mount, as secret grants do, and a config revoke leaves the secret of the
// same name.
func TestLiveConfigGrant(t *testing.T) {
	e := newEnv(t, 0)
	e.secret(t, "app.ini", "secret bytes")
	e.config(t, "app.ini", "[app]", false)
	e.volume(t, "v1", map[string]string{controller.OptionSecrets: "app.ini"})
	e.engine.Set(ctr("c1", "web", container.StateRunning, 1, "", "v1"))
	dir := e.mount(t, "v1", "m1")
	task, err := e.ctrl.UpdateContainer(context.Background(), "web", api.ContainerUpdateRequest{ConfigAdd: []string{"source=app.ini,target=conf/app.ini"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(task.Secrets) != 2 || task.Secrets[1].Kind != "config" {
		t.Errorf("after the grant: %+v", task.Secrets)
	}
	if got := readFile(t, filepath.Join(dir, "conf/app.ini")); got != "[app]" {
		t.Errorf("granted config: %q", got)
	}
	if _, err := e.ctrl.UpdateContainer(context.Background(), "web", api.ContainerUpdateRequest{ConfigRm: []string{"app.ini"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "conf/app.ini")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("revoked config still there: %v", err)
	}
	if got := readFile(t, filepath.Join(dir, "app.ini")); got != "secret bytes" {
		t.Errorf("the secret of the same name after the config's revoke: %q", got)
	}
	if _, err := e.ctrl.UpdateContainer(context.Background(), "web", api.ContainerUpdateRequest{ConfigRm: []string{"app.ini"}}); err == nil || !strings.Contains(err.Error(), "config 'app.ini' is not granted") {
		t.Errorf("revoking it again: %v", err)
	}
}

// TestConfigsLabel: the secretd.configs label declares configs beside the
// secretd.secrets label, and the volume binds to both; a container with
// only the configs label declares too.
func TestConfigsLabel(t *testing.T) {
	e := newEnv(t, 0)
	e.secret(t, "db", "secret-db")
	e.config(t, "app.ini", "[app]", false)
	e.vols.anon("vol")
	c := ctr("id-a", "a", container.StateCreated, 1, "db", "vol")
	c.Labels[controller.LabelConfigs] = "source=app.ini,target=conf/app.ini"
	e.engine.Set(c)
	dir := e.mount(t, "vol", "m1")
	if got := readFile(t, filepath.Join(dir, "db")); got != "secret-db" {
		t.Errorf("db: %q", got)
	}
	if got := readFile(t, filepath.Join(dir, "conf/app.ini")); got != "[app]" {
		t.Errorf("app.ini: %q", got)
	}
	v, _ := e.ctrl.Volume("vol")
	if v.BoundBy != controller.BoundByLabel || !strings.Contains(v.Declaration, "config=app.ini,target=conf/app.ini") {
		t.Errorf("bound %+v", v)
	}
	e.vols.anon("vol2")
	only := ctr("id-b", "b", container.StateCreated, 2, "", "vol2")
	only.Labels[controller.LabelConfigs] = "app.ini"
	e.engine.Set(c, only)
	dir = e.mount(t, "vol2", "m2")
	if got := readFile(t, filepath.Join(dir, "app.ini")); got != "[app]" {
		t.Errorf("configs label alone: %q", got)
	}
	// Labels that put a secret and a config at one target are refused.
	e.vols.anon("vol3")
	bad := ctr("id-c", "c", container.StateCreated, 3, "db", "vol3")
	bad.Labels[controller.LabelConfigs] = "source=app.ini,target=db"
	e.engine.Set(c, only, bad)
	if _, err := e.ctrl.Mount(context.Background(), "vol3", "m3"); err == nil || !strings.Contains(err.Error(), `duplicate target "db"`) {
		t.Errorf("a secret and a config at one target: %v", err)
	}
}
