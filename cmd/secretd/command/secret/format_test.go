package secret

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

func fixtures() []api.Secret {
	mk := func(id, name string, labels map[string]string, created time.Duration, cur int) api.Secret {
		s := api.Secret{Secret: swarm.Secret{
			ID: id,
			Meta: swarm.Meta{
				Version:   swarm.Version{Index: uint64(cur) + 10},
				CreatedAt: now.Add(-created), UpdatedAt: now.Add(-created / 2),
			},
			Spec: swarm.SecretSpec{Annotations: swarm.Annotations{Name: name, Labels: labels}},
		}, CurrentVersion: cur}
		for v := 1; v <= cur; v++ {
			s.Versions = append(s.Versions, api.SecretVersion{Version: v, CreatedAt: now.Add(-created).Add(time.Duration(v) * time.Minute)})
		}
		return s
	}
	return []api.Secret{
		mk("wk5fpokcz8wbwmuw587izl1in", "todobackend_mysql_password", nil, 57*time.Second, 1),
		mk("584ojwg31c0oidjydxkglv4qz", "todobackend_mysql_root_password", map[string]string{"env": "prod"}, 50*time.Minute, 3),
		mk("t5rb04xcqyrqiglmfwrfs122y", "todobackend_secret_key", map[string]string{"env": "prod", "team": "web"}, 4*time.Hour, 2),
	}
}

func TestListFormats(t *testing.T) {
	for _, c := range []struct {
		golden string
		opts   listOptions
	}{
		{"ls-default.golden", listOptions{}},
		{"ls-table.golden", listOptions{format: "table"}},
		{"ls-quiet.golden", listOptions{quiet: true}},
		{"ls-json.golden", listOptions{format: "json"}},
		{"ls-template.golden", listOptions{format: "{{.Name}}: v{{.Version}} {{.Label \"env\"}}"}},
		{"ls-custom-table.golden", listOptions{format: "table {{.Name}}\t{{.Labels}}"}},
	} {
		t.Run(c.golden, func(t *testing.T) {
			var out bytes.Buffer
			if err := writeList(&cli.Cli{Out: &out}, c.opts, api.NewSecretTable(fixtures()), now); err != nil {
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
		{"inspect-format.golden", inspectOptions{format: "{{.ID}} {{.Spec.Name}} {{.CurrentVersion}} {{json .Spec.Labels}}"}},
	} {
		t.Run(c.golden, func(t *testing.T) {
			var out bytes.Buffer
			if err := writeInspect(&cli.Cli{Out: &out}, c.opts, fixtures()[1:]); err != nil {
				t.Fatal(err)
			}
			golden.Assert(t, c.golden, out.String())
		})
	}
}

func TestBadTemplate(t *testing.T) {
	var out bytes.Buffer
	if err := writeList(&cli.Cli{Out: &out}, listOptions{format: "{{.Nope}}"}, api.NewSecretTable(fixtures()), now); err == nil {
		t.Fatal("a template naming an unknown field was accepted")
	}
	if err := writeInspect(&cli.Cli{Out: &out}, inspectOptions{format: "{{"}, fixtures()); err == nil {
		t.Fatal("an unparsable template was accepted")
	}
}

// sourceFixtures adds driver secrets to fixtures: one fetched at each
// Mount, one cached and refreshed whose last Mount was served stale.
func sourceFixtures() []api.Secret {
	list := fixtures()
	plain := list[0]
	plain.ID, plain.Spec.Name, plain.CurrentVersion, plain.Versions = "k2v1ql0q3yuvd7r0gvm0l5a0x", "db_password", 0, nil
	plain.Source = &api.SecretSource{Driver: "shell", OptionKeys: []string{"lookup", "timeout"},
		LastMount: &api.SourceMount{At: now.Add(-time.Minute)}}
	cached := list[1]
	cached.ID, cached.Spec.Name = "q9mz0b7e1c2sx4h8r5t3w6y1u", "vault_token"
	cached.Source = &api.SecretSource{Driver: "vault", Cache: true, Refresh: "5m0s",
		LastMount: &api.SourceMount{At: now.Add(-time.Minute), Cached: true, Error: "secret 'vault_token': secret driver plugin \"vault\": source unavailable: the plugin answered: sealed"}}
	return append(list, plain, cached)
}

func TestSourceFormats(t *testing.T) {
	var out bytes.Buffer
	if err := writeList(&cli.Cli{Out: &out}, listOptions{}, api.NewSecretTable(sourceFixtures()), now); err != nil {
		t.Fatal(err)
	}
	golden.Assert(t, "ls-driver.golden", out.String())
	out.Reset()
	if err := writeInspect(&cli.Cli{Out: &out}, inspectOptions{pretty: true}, sourceFixtures()[3:]); err != nil {
		t.Fatal(err)
	}
	golden.Assert(t, "inspect-pretty-driver.golden", out.String())
}

// A templated secret adds the TEMPLATE column, and --pretty names its
// driver.
func TestTemplateFormats(t *testing.T) {
	list := fixtures()
	list[0].Spec.Templating = &swarm.Driver{Name: "golang"}
	var out bytes.Buffer
	if err := writeList(&cli.Cli{Out: &out}, listOptions{}, api.NewSecretTable(list), now); err != nil {
		t.Fatal(err)
	}
	golden.Assert(t, "ls-template-driver.golden", out.String())
	out.Reset()
	if err := writeInspect(&cli.Cli{Out: &out}, inspectOptions{pretty: true}, list[:1]); err != nil {
		t.Fatal(err)
	}
	golden.Assert(t, "inspect-pretty-template.golden", out.String())
}
