package system

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/cmd/secretd/command/golden"
)

var psNow = time.Date(2026, 11, 22, 16, 0, 0, 0, time.UTC)

func psTasks() []api.Task {
	return []api.Task{
		{ContainerID: "5cb1c2348a59f00dd1e3c0e0b5d1b2a1", ContainerName: "redis", Volume: "3f48719b7e1c1fee069194b13cbc9f25", MountID: "m1", Mount: "/run/secretd/mounts/m1", Since: psNow.Add(-3 * time.Minute),
			Secrets: []api.TaskSecret{{ID: "wwwrxza8sxy025bas86593fqs", Name: "my_secret_data", Version: 1, Target: "my_secret_data"}}},
		{ContainerID: "0a1b2c3d4e5f", ContainerName: "app", Volume: "todo_app-secrets", MountID: "m2", Mount: "/run/secretd/mounts/m2", Since: psNow.Add(-2 * time.Hour),
			Secrets: []api.TaskSecret{
				{ID: "wk5fpokcz8wbwmuw587izl1in", Name: "todobackend_mysql_password", Version: 3, Target: "MYSQL_PASSWORD"},
				{ID: "t5rb04xcqyrqiglmfwrfs122y", Name: "todobackend_secret_key", Version: 1, Pinned: true, Target: "SECRET_KEY"},
			}},
		{ContainerID: "9f8e7d6c5b4a39281706f5e4d3c2b1a0", ContainerName: "db", Volume: "todo_db-secrets", MountID: "m3", Mount: "/run/secretd/mounts/m3", Since: psNow.Add(-2 * time.Hour),
			Secrets: []api.TaskSecret{
				{ID: "wk5fpokcz8wbwmuw587izl1in", Name: "todobackend_mysql_password", Version: 3, Target: "MYSQL_PASSWORD"},
				{ID: "584ojwg31c0oidjydxkglv4qz", Name: "todobackend_mysql_root_password", Version: 2, Target: "MYSQL_ROOT_PASSWORD"},
			}},
	}
}

// TestPsFormats renders each output of `secretd ps`, filters and
// CONTAINER arguments included, against its golden file.
func TestPsFormats(t *testing.T) {
	for _, c := range []struct {
		golden string
		opts   psOptions
	}{
		{"ps-default.golden", psOptions{}},
		{"ps-table.golden", psOptions{format: "table"}},
		{"ps-json.golden", psOptions{format: "json"}},
		{"ps-template.golden", psOptions{format: "{{.Name}} {{.Secret}}@{{.Version}}"}},
		{"ps-custom-table.golden", psOptions{format: "table {{.Name}}\t{{.Volume}}\t{{.SecretID}}"}},
		{"ps-quiet.golden", psOptions{quiet: true}},
		{"ps-quiet-filter-secret.golden", psOptions{quiet: true, filters: []string{"secret=todobackend_mysql_password"}}},
		{"ps-filter-container.golden", psOptions{filters: []string{"container=redis", "container=9f8e7d"}}},
		{"ps-filter-secret.golden", psOptions{filters: []string{"secret=todobackend_mysql_root_password", "secret=t5rb04"}}},
		{"ps-filter-volume.golden", psOptions{filters: []string{"volume=todo_db-secrets"}}},
		{"ps-filter-and.golden", psOptions{filters: []string{"volume=todo_app-secrets", "secret=todobackend_mysql_password"}}},
		{"ps-container-arg.golden", psOptions{containers: []string{"redis", "0a1b2c"}}},
		{"ps-configs.golden", psOptions{containers: []string{"web"}}},
		{"ps-filter-config.golden", psOptions{filters: []string{"config=site.conf"}}},
		{"ps-reads.golden", psOptions{containers: []string{"web"}, format: "{{.Kind}} {{.Secret}}@{{.Version}} {{.Reads}}"}},
	} {
		t.Run(c.golden, func(t *testing.T) {
			m, err := c.opts.matcher()
			if err != nil {
				t.Fatal(err)
			}
			// A container with a config of a secret's name, and a
			// rendered template.
			web := api.Task{ContainerID: "c0ffee0ddba11", ContainerName: "web", Volume: "web-secrets", MountID: "m4", Mount: "/run/secretd/mounts/m4", Since: psNow.Add(-time.Minute),
				Secrets: []api.TaskSecret{
					{ID: "n0cb2m2o5bbbq6vzcvkqylyga", Name: "site.conf", Version: 1, Target: "site.conf"},
					{Kind: "config", ID: "3nqcb2m2o5bbbq6vzcvkqylyg", Name: "site.conf", Version: 2, Target: "conf/site.conf"},
					{Kind: "config", ID: "k7u0ahxw5tvq8rzqz0j5y2c1e", Name: "app.ini", Version: 1, Target: "app.ini", Reads: []string{"secret:db_password@4", "config:site.conf@2"}},
				}}
			all := psTasks()
			if strings.Contains(c.golden, "config") || strings.Contains(c.golden, "reads") {
				all = append(all, web)
			}
			tasks, err := c.opts.pick(all, m)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := writePs(&cli.Cli{Out: &out}, c.opts, tasks, psNow); err != nil {
				t.Fatal(err)
			}
			golden.Assert(t, c.golden, out.String())
		})
	}
}

func TestStatusFormats(t *testing.T) {
	base := api.Status{Version: "1.2.3", Store: "bolt:///var/lib/secretd/secrets.db", Engine: "unix:///var/run/docker.sock",
		Secrets: 4, Mounts: 2, SpareMounts: 1, Goroutines: 31, OpenFDs: 17, Noswap: true}
	noSwapOff, noSwapOn := base, base
	noSwapOff.Noswap = false
	noSwapOn.Noswap, noSwapOn.SwapOn = false, true
	probeFailed := noSwapOn
	probeFailed.NoswapError = "probe for tmpfs noswap: mount at /run/secretd/mounts/.secretd-noswap-probe-1: operation not permitted"
	for _, c := range []struct {
		golden, format string
		st             api.Status
	}{
		{"status-noswap.golden", "", base},
		{"status-swapoff.golden", "", noSwapOff},
		{"status-swapon.golden", "", noSwapOn},
		{"status-noswap-unknown.golden", "", probeFailed},
		{"status-template.golden", "{{.Noswap}} {{.SwapOn}}", noSwapOn},
	} {
		t.Run(c.golden, func(t *testing.T) {
			var out bytes.Buffer
			if err := writeStatus(&cli.Cli{Out: &out}, c.format, c.st); err != nil {
				t.Fatal(err)
			}
			golden.Assert(t, c.golden, out.String())
		})
	}
}

// TestPsRefusals: a bad filter is refused before asking the daemon, and a
// CONTAINER that holds no secrets is named while the others still list.
func TestPsRefusals(t *testing.T) {
	for _, c := range []struct {
		filter, want string
	}{
		{"image=redis", "invalid filter 'image': use container=, secret=, config= or volume="},
		{"container", "bad format of filter (expected name=value): container"},
	} {
		if _, err := (psOptions{filters: []string{c.filter}}).matcher(); err == nil || err.Error() != c.want {
			t.Errorf("--filter %s: %v, want %q", c.filter, err, c.want)
		}
	}
	// A name that is also the start of an ID names its container alone.
	clash := append(psTasks(), api.Task{ContainerID: "db0123456789", ContainerName: "other",
		Secrets: []api.TaskSecret{{ID: "my_secret_data_id", Name: "x"}}})
	for _, o := range []psOptions{{containers: []string{"db"}}, {filters: []string{"container=db"}}} {
		m, _ := o.matcher()
		if got, err := o.pick(clash, m); err != nil || len(got) != 1 || got[0].ContainerName != "db" {
			t.Errorf("%+v: %+v, %v; want container db alone", o, got, err)
		}
	}
	if got, _ := (psOptions{}).pick(clash, psMatch{"secret": {"my_secret_data"}}); len(got) != 1 || got[0].ContainerName != "redis" {
		t.Errorf("--filter secret=my_secret_data: %+v, want redis alone", got)
	}
	// An ID prefix that two IDs share names neither.
	if got, _ := (psOptions{}).pick(clash, psMatch{"container": {"9"}}); len(got) != 1 {
		t.Errorf("--filter container=9: %+v, want db alone (9f8e…)", got)
	}
	if got, _ := (psOptions{}).pick(clash, psMatch{"secret": {"w"}}); len(got) != 0 {
		t.Errorf("--filter secret=w (three IDs start so): %+v, want none", got)
	}
	o := psOptions{containers: []string{"redis", "nosuch", "other"}}
	tasks, err := o.pick(psTasks(), psMatch{})
	want := "no container holding secretd secrets is named nosuch, other: see 'secretd ps' for those that do"
	if err == nil || err.Error() != want {
		t.Errorf("ps redis nosuch other: %v, want %q", err, want)
	}
	if len(tasks) != 1 || tasks[0].ContainerName != "redis" {
		t.Errorf("ps redis nosuch other listed %+v, want redis alone", tasks)
	}
}

// TestPsCommandArgs: the command takes CONTAINER arguments (it once said
// `unknown command "redis"`) and -q, through cobra's own parsing.
func TestPsCommandArgs(t *testing.T) {
	var out bytes.Buffer
	c := cli.NewCli(strings.NewReader(""), &out, &out)
	c.Hosts = []string{"unix:///nonexistent/secretd.sock"}
	cmd := NewPsCommand(c)
	cmd.SetArgs([]string{"-q", "--filter", "volume=v", "redis"})
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	err := cmd.Execute()
	// Parsed, then stopped only by the absent daemon.
	if err == nil || !strings.Contains(err.Error(), "is the daemon running?") {
		t.Errorf("secretd ps -q --filter volume=v redis: %v", err)
	}
}
