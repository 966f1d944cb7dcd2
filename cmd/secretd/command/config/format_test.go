package config

import (
	"bytes"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/cmd/secretd/command/golden"
)

var now = time.Date(2026, 11, 22, 16, 0, 0, 0, time.UTC)

func fixtures() []api.Config {
	mk := func(id, name string, labels map[string]string, created time.Duration, cur int, data string, tpl bool) api.Config {
		c := api.Config{Config: swarm.Config{
			ID: id,
			Meta: swarm.Meta{
				Version:   swarm.Version{Index: uint64(cur) + 10},
				CreatedAt: now.Add(-created), UpdatedAt: now.Add(-created / 2),
			},
			Spec: swarm.ConfigSpec{Annotations: swarm.Annotations{Name: name, Labels: labels}, Data: []byte(data)},
		}, CurrentVersion: cur}
		if tpl {
			c.Spec.Templating = &swarm.Driver{Name: "golang"}
		}
		for v := 1; v <= cur; v++ {
			c.Versions = append(c.Versions, api.SecretVersion{Version: v, CreatedAt: now.Add(-created).Add(time.Duration(v) * time.Minute)})
		}
		return c
	}
	return []api.Config{
		mk("3nqcb2m2o5bbbq6vzcvkqylyg", "site.conf", map[string]string{"app": "nginx"}, 57*time.Second, 1,
			"server {\n    listen                443 ssl;\n    server_name           localhost;\n    ssl_certificate       /run/secrets/site.crt;\n    ssl_certificate_key   /run/secrets/site.key;\n}\n", false),
		mk("k7u0ahxw5tvq8rzqz0j5y2c1e", "app.ini", nil, 50*time.Minute, 3, "[db]\ndsn = app:{{ secret \"db_password\" }}@db\nhost = {{ .Task.Name }}\n", true),
	}
}

func TestListFormats(t *testing.T) {
	for _, c := range []struct {
		golden string
		opts   listOptions
		list   []api.Config
	}{
		{"ls-default.golden", listOptions{}, fixtures()[:1]},
		{"ls-template.golden", listOptions{}, fixtures()},
		{"ls-quiet.golden", listOptions{quiet: true}, fixtures()},
		{"ls-json.golden", listOptions{format: "json"}, fixtures()},
		{"ls-custom.golden", listOptions{format: "{{.Name}}: v{{.Version}} {{.Label \"app\"}}"}, fixtures()},
	} {
		t.Run(c.golden, func(t *testing.T) {
			var out bytes.Buffer
			if err := writeList(&cli.Cli{Out: &out}, c.opts, api.NewConfigTable(c.list), now); err != nil {
				t.Fatal(err)
			}
			golden.Assert(t, c.golden, out.String())
		})
	}
}

func TestInspectFormats(t *testing.T) {
	for _, c := range []struct {
		golden string
		opts   inspectOptions
	}{
		{"inspect-default.golden", inspectOptions{}},
		{"inspect-pretty.golden", inspectOptions{pretty: true}},
		{"inspect-format.golden", inspectOptions{format: `{{.Spec.Name}} {{.CurrentVersion}} {{printf "%s" .Spec.Data | len}}`}},
	} {
		t.Run(c.golden, func(t *testing.T) {
			var out bytes.Buffer
			if err := writeInspect(&cli.Cli{Out: &out}, c.opts, fixtures()); err != nil {
				t.Fatal(err)
			}
			golden.Assert(t, c.golden, out.String())
		})
	}
}

func TestBadTemplate(t *testing.T) {
	var out bytes.Buffer
	if err := writeList(&cli.Cli{Out: &out}, listOptions{format: "{{.Nope}}"}, api.NewConfigTable(fixtures()), now); err == nil {
		t.Fatal("a template naming an unknown field was accepted")
	}
	if err := writeInspect(&cli.Cli{Out: &out}, inspectOptions{format: "{{"}, fixtures()); err == nil {
		t.Fatal("an unparsable template was accepted")
	}
}
