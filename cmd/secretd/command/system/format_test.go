package system

import (
	"bytes"
	"testing"
	"time"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/cmd/secretd/command/golden"
)

func TestPsFormats(t *testing.T) {
	now := time.Date(2026, 11, 22, 16, 0, 0, 0, time.UTC)
	tasks := []api.Task{
		{ContainerID: "5cb1c2348a59f00dd1e3c0e0b5d1b2a1", ContainerName: "redis", MountID: "m1", Mount: "/run/secretd/mounts/m1", Since: now.Add(-3 * time.Minute),
			Secrets: []api.TaskSecret{{ID: "wwwrxza8sxy025bas86593fqs", Name: "my_secret_data", Version: 1, Target: "my_secret_data"}}},
		{ContainerID: "0a1b2c3d4e5f", ContainerName: "app", MountID: "m2", Mount: "/run/secretd/mounts/m2", Since: now.Add(-2 * time.Hour),
			Secrets: []api.TaskSecret{
				{ID: "wk5fpokcz8wbwmuw587izl1in", Name: "todobackend_mysql_password", Version: 3, Target: "MYSQL_PASSWORD"},
				{ID: "t5rb04xcqyrqiglmfwrfs122y", Name: "todobackend_secret_key", Version: 1, Pinned: true, Target: "SECRET_KEY"},
			}},
	}
	for _, c := range []struct{ golden, format string }{
		{"ps-default.golden", ""},
		{"ps-json.golden", "json"},
		{"ps-template.golden", "{{.Name}} {{.Secret}}@{{.Version}}"},
	} {
		t.Run(c.golden, func(t *testing.T) {
			var out bytes.Buffer
			if err := writePs(&cli.Cli{Out: &out}, c.format, append([]api.Task{}, tasks...), now); err != nil {
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
	for _, c := range []struct {
		golden, format string
		st             api.Status
	}{
		{"status-noswap.golden", "", base},
		{"status-swapoff.golden", "", noSwapOff},
		{"status-swapon.golden", "", noSwapOn},
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
