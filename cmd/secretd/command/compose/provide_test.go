package compose

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/swarm"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/api/client"
	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/cmd/secretd/internal/fakeclient"
	"github.com/secretd/secretd/internal/compose"
)

const configsStack = `services:
  nginx:
    image: busybox
    secrets: [site.key]
    configs:
      - source: site.conf
        target: /etc/nginx/conf.d/site.conf
      - dsn.tmpl
      - ext
secrets:
  site.key:
    file: ./site.key
configs:
  site.conf:
    file: ./site.conf
  dsn.tmpl:
    content: 'dsn=app:{{ secret "site.key" }}@db'
    template_driver: golang
  ext:
    external: true
`

func translation(t *testing.T) *compose.Translation {
	t.Helper()
	dir := t.TempDir()
	for name, data := range map[string]string{"compose.yaml": configsStack, "site.key": "k3y", "site.conf": "server {}"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p, err := compose.Load(context.Background(), compose.Options{WorkingDir: dir, Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := compose.Translate(p, "secretd")
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func notFound(kind, name string) error {
	return &client.Error{StatusCode: 404, Message: kind + " '" + name + "' not found"}
}

// TestProvideConfigs: configs are imported as secrets are (PROJECT_KEY,
// the namespace label, template_driver), external ones must exist, and an
// unchanged source stores nothing.
func TestProvideConfigs(t *testing.T) {
	tr := translation(t)
	created := map[string]string{}
	stored := map[string]api.Config{}
	fc := &fakeclient.Client{
		SecretInspectFunc: func(_ context.Context, ref string) (api.Secret, error) { return api.Secret{}, notFound("secret", ref) },
		SecretCreateFunc: func(_ context.Context, name string, labels map[string]string, data []byte) (string, error) {
			created["secret "+name] = string(data)
			return "s1", nil
		},
		ConfigInspectFunc: func(_ context.Context, ref string) (api.Config, error) {
			if c, ok := stored[ref]; ok {
				return c, nil
			}
			return api.Config{}, notFound("config", ref)
		},
		ConfigCreateFunc: func(_ context.Context, name string, labels map[string]string, data []byte, tpl string) (string, error) {
			created["config "+name+" "+tpl+" "+labels[compose.NamespaceLabel]] = string(data)
			return "c1", nil
		},
	}
	var out bytes.Buffer
	c := cli.NewCli(strings.NewReader(""), &out, &out).WithClient(fc)
	err := options{}.provide(context.Background(), c, tr)
	if err == nil || err.Error() != "external config not found in secretd: ext: create it with 'secretd config create NAME FILE|-' first; nothing was started" {
		t.Fatalf("missing external config: %v", err)
	}
	if len(created) > 0 {
		t.Fatalf("created %v although an external config is missing", created)
	}
	stored["ext"] = api.Config{Config: swarm.Config{ID: "e1"}}
	if err := (options{}).provide(context.Background(), c, tr); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"secret web_site.key":            "k3y",
		"config web_site.conf  web":      "server {}",
		"config web_dsn.tmpl golang web": `dsn=app:{{ secret "site.key" }}@db`,
	}
	if len(created) != len(want) {
		t.Errorf("created %v, want %v", created, want)
	}
	for k, v := range want {
		if created[k] != v {
			t.Errorf("created[%q] = %q, want %q", k, created[k], v)
		}
	}

	// At the next up the configs exist: unchanged data stores nothing; a
	// config created without the file's template_driver is refused.
	for name, tpl := range map[string]string{"web_site.conf": "", "web_dsn.tmpl": "golang"} {
		c := api.Config{Config: swarm.Config{ID: name, Spec: swarm.ConfigSpec{Annotations: swarm.Annotations{Labels: map[string]string{compose.NamespaceLabel: "web"}}}}, CurrentVersion: 1}
		if tpl != "" {
			c.Spec.Templating = &swarm.Driver{Name: tpl}
		}
		stored[name] = c
	}
	fc.SecretInspectFunc = func(_ context.Context, ref string) (api.Secret, error) {
		return api.Secret{Secret: swarm.Secret{Spec: swarm.SecretSpec{Annotations: swarm.Annotations{Labels: map[string]string{compose.NamespaceLabel: "web"}}}}, CurrentVersion: 1}, nil
	}
	fc.SecretUpdateIfChangedFunc = func(context.Context, string, []byte) (api.Secret, error) { return api.Secret{CurrentVersion: 1}, nil }
	updated := 0
	fc.ConfigUpdateIfChangedFunc = func(context.Context, string, []byte) (api.Config, error) {
		updated++
		return api.Config{CurrentVersion: 1}, nil
	}
	out.Reset()
	if err := (options{}).provide(context.Background(), c, tr); err != nil || updated != 2 || out.Len() != 0 {
		t.Fatalf("second up: %v, %d updates, printed %q", err, updated, out.String())
	}
	plain := stored["web_dsn.tmpl"]
	plain.Spec.Templating = nil
	stored["web_dsn.tmpl"] = plain
	if err := (options{}).provide(context.Background(), c, tr); err == nil || !strings.Contains(err.Error(), `config "dsn.tmpl": config web_dsn.tmpl was created without template_driver`) {
		t.Errorf("template driver changed in the file: %v", err)
	}
}
