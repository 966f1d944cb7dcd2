package container

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/cmd/secretd/internal/fakeclient"
)

// runWith runs `secretd run args...` with docker stubbed out, against a
// daemon that serves the driver "secretd", and returns the docker arguments
// it would have run (nil when it ran nothing).
func runWith(t *testing.T, code int, args ...string) ([]string, string, error) {
	t.Helper()
	return runAgainst(t, serving("secretd"), code, args...)
}

// serving is a daemon that answers, unlocked, serving volume driver name.
func serving(name string) *fakeclient.Client {
	return &fakeclient.Client{StatusFunc: func(context.Context) (api.Status, error) {
		return api.Status{VolumeDriver: name}, nil
	}}
}

// runAgainst is runWith against the daemon fc.
func runAgainst(t *testing.T, fc *fakeclient.Client, code int, args ...string) ([]string, string, error) {
	t.Helper()
	var got []string
	ran := false
	old := execDocker
	execDocker = func(_ *cli.Cli, a []string) (int, error) {
		ran, got = true, a
		return code, nil
	}
	t.Cleanup(func() { execDocker = old })
	var out bytes.Buffer
	c := cli.NewCli(strings.NewReader(""), &out, &out).WithClient(fc)
	cmd := NewRunCommand(c)
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	err := cmd.Execute()
	if !ran {
		got = nil
	}
	return got, out.String(), err
}

func TestRunBuildsDockerRun(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"double dash", []string{"--secret", "a", "--secret", "source=b,target=x/b", "--", "--rm", "--network", "none", "img", "cat", "/run/secrets/a"},
			[]string{"run", "--mount", `type=volume,volume-driver=secretd,dst=/run/secrets,volume-nocopy,"volume-opt=secrets=a;source=b,target=x/b",volume-opt=on-update=none`,
				"--rm", "--network", "none", "img", "cat", "/run/secrets/a"}},
		{"docker flags without --, ours with =", []string{"--secret=a", "--driver=secretd", "-d", "--name", "web", "img", "sh", "-c", "x --secret y"},
			[]string{"run", "--mount", "type=volume,volume-driver=secretd,dst=/run/secrets,volume-nocopy,volume-opt=secrets=a,volume-opt=on-update=none",
				"-d", "--name", "web", "img", "sh", "-c", "x --secret y"}},
		{"image first stops our parsing", []string{"--secret", "a", "img", "--secret", "b"},
			[]string{"run", "--mount", "type=volume,volume-driver=secretd,dst=/run/secrets,volume-nocopy,volume-opt=secrets=a,volume-opt=on-update=none",
				"img", "--secret", "b"}},
		// Seed 004's nginx walkthrough: src=, and an absolute target that
		// gets a one-file volume mounted at that path.
		{"absolute target", []string{"--secret", "site.key", "--secret", "src=site.conf,target=/etc/nginx/conf.d/site.conf,mode=0400",
			"--secret", "source=c,target=/run/secrets/c.pem", "img"},
			[]string{"run",
				"--mount", `type=volume,volume-driver=secretd,dst=/run/secrets,volume-nocopy,"volume-opt=secrets=site.key;source=c,target=c.pem,uid=0,gid=0,mode=0444","volume-opt=scope=source=site.key,target=site.key,uid=0,gid=0,mode=0444;source=site.conf,target=/etc/nginx/conf.d/site.conf,uid=0,gid=0,mode=0400;source=c,target=/run/secrets/c.pem,uid=0,gid=0,mode=0444",volume-opt=on-update=none`,
				"--mount", `type=volume,volume-driver=secretd,dst=/etc/nginx/conf.d/site.conf,volume-nocopy,"volume-opt=secrets=source=site.conf,target=site.conf,uid=0,gid=0,mode=0400",volume-opt=file=site.conf,"volume-opt=scope=source=site.key,target=site.key,uid=0,gid=0,mode=0444;source=site.conf,target=/etc/nginx/conf.d/site.conf,uid=0,gid=0,mode=0400;source=c,target=/run/secrets/c.pem,uid=0,gid=0,mode=0444",volume-opt=on-update=none`,
				"img"}},
		// Seed 004's nginx walkthrough with site.conf as a config: its
		// default target is /NAME; one under the target dir joins the
		// secrets; several volumes share the whole declaration (scope).
		{"config", []string{"--config", "site.conf", "img"},
			[]string{"run", "--mount", `type=volume,volume-driver=secretd,dst=/site.conf,volume-nocopy,"volume-opt=configs=source=site.conf,target=site.conf,uid=0,gid=0,mode=0444",volume-opt=file=site.conf,volume-opt=on-update=none`, "img"}},
		{"configs and secrets", []string{"--secret", "site.key", "--config", "src=site.conf,target=/etc/nginx/conf.d/site.conf",
			"--config", "source=app.ini,target=/run/secrets/app.ini,mode=0400", "img"},
			[]string{"run",
				"--mount", `type=volume,volume-driver=secretd,dst=/run/secrets,volume-nocopy,volume-opt=secrets=site.key,"volume-opt=configs=source=app.ini,target=app.ini,uid=0,gid=0,mode=0400","volume-opt=scope=source=site.key,target=site.key,uid=0,gid=0,mode=0444;config=site.conf,target=/etc/nginx/conf.d/site.conf,uid=0,gid=0,mode=0444;config=app.ini,target=/run/secrets/app.ini,uid=0,gid=0,mode=0400",volume-opt=on-update=none`,
				"--mount", `type=volume,volume-driver=secretd,dst=/etc/nginx/conf.d/site.conf,volume-nocopy,"volume-opt=configs=source=site.conf,target=site.conf,uid=0,gid=0,mode=0444",volume-opt=file=site.conf,"volume-opt=scope=source=site.key,target=site.key,uid=0,gid=0,mode=0444;config=site.conf,target=/etc/nginx/conf.d/site.conf,uid=0,gid=0,mode=0444;config=app.ini,target=/run/secrets/app.ini,uid=0,gid=0,mode=0400",volume-opt=on-update=none`,
				"img"}},
		{"engine and target dir", []string{"--docker-host", "unix:///tmp/d.sock", "--secret-target-dir", "/etc/app,conf", "--secret", "a@2", "img"},
			[]string{"--host", "unix:///tmp/d.sock", "run", "--mount", `type=volume,volume-driver=secretd,"dst=/etc/app,conf",volume-nocopy,volume-opt=secrets=a@2,volume-opt=on-update=none`, "img"}},
		// The container's on-update label goes to every volume, checked
		// and in its canonical form; docker's last one wins.
		{"on-update label", []string{"--secret", "a", "--", "-d", "--label", "secretd.on-update=restart",
			"-l", "secretd.on-update=signal:hup", "img"},
			[]string{"run",
				"--mount", "type=volume,volume-driver=secretd,dst=/run/secrets,volume-nocopy,volume-opt=secrets=a,volume-opt=on-update=signal:SIGHUP",
				"-d", "--label", "secretd.on-update=restart", "-l", "secretd.on-update=signal:hup", "img"}},
		{"on-update label, one file", []string{"--secret", "src=b,target=/etc/b.conf", "--", "-l", "secretd.on-update=restart", "img"},
			[]string{"run",
				"--mount", `type=volume,volume-driver=secretd,dst=/etc/b.conf,volume-nocopy,"volume-opt=secrets=source=b,target=b.conf,uid=0,gid=0,mode=0444",volume-opt=file=b.conf,volume-opt=on-update=restart`,
				"-l", "secretd.on-update=restart", "img"}},
		// A label file may set it: the daemon learns it from the container.
		{"label file", []string{"--secret", "a", "--label-file", "labels", "img"},
			[]string{"run", "--mount", "type=volume,volume-driver=secretd,dst=/run/secrets,volume-nocopy,volume-opt=secrets=a",
				"--label-file", "labels", "img"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, out, err := runWith(t, 0, tc.args...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("docker %q\nwant   %q", got, tc.want)
			}
		})
	}
}

func TestRunRefusesBeforeStarting(t *testing.T) {
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--", "img"}, "at least one --secret or --config"},
		{[]string{"--config", "a;b", "img"}, "one config per --config"},
		{[]string{"--config", "source=x,target=/a", "--secret", "source=y,target=/a", "img"}, "a secret and a config both have target /a"},
		{[]string{"--config", "source=x,target=/run/secrets/a", "--secret", "a", "img"}, `duplicate target "a"`},
		{[]string{"--config", "source=x,uid=nope", "img"}, `uid "nope" is not a number`},
		{[]string{"--secret", "a"}, "needs an image"},
		{[]string{"--secret", "a;b", "img"}, "one secret per --secret"},
		{[]string{"--secret", "source=x,mode=999", "img"}, `mode "999" is not an octal number`},
		{[]string{"--secret", "source=x,target=../x", "img"}, "target"},
		{[]string{"--secret", "a", "--secret", "source=b,target=a", "img"}, `duplicate target "a"`},
		{[]string{"--secret", "a", "--secret-target-dir", "run/secrets", "img"}, "absolute"},
		{[]string{"--secret", "bad name!", "img"}, "invalid"},
		{[]string{"--secret", "source=x,target=/etc/../shadow", "img"}, `target "/etc/../shadow": use a clean absolute path`},
		{[]string{"--secret", "source=x,target=/", "img"}, `target "/" is the root directory`},
		{[]string{"--secret", "source=x,target=/etc/k", "--secret", "source=y,target=/etc/k", "img"}, "two secrets have target /etc/k"},
		{[]string{"--secret", "a", "--", "--label", "secretd.on-update=signal:SIGHUPP", "img"}, `label secretd.on-update="signal:SIGHUPP": unknown signal "SIGHUPP"`},
		{[]string{"--secret", "a", "--", "--label=secretd.on-update=restart-always", "img"}, `label secretd.on-update="restart-always": use none, signal:SIGNAME`},
		{[]string{"--secret", "a", "--", "-dlsecretd.on-update=reload", "img"}, `label secretd.on-update="reload"`},
		{[]string{"--secret", "a", "--", "-l=secretd.on-update=reload", "--label-file", "f", "img"}, `label secretd.on-update="reload"`},
	} {
		got, _, err := runWith(t, 0, tc.args...)
		if got != nil {
			t.Errorf("%q started docker %q", tc.args, got)
		}
		var se *cli.StatusError
		if !errors.As(err, &se) || se.Status != 125 || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q: error %v, want status 125 mentioning %q", tc.args, err, tc.msg)
		}
	}
}

func TestRunPassesExitStatus(t *testing.T) {
	_, out, err := runWith(t, 42, "--secret", "a", "img")
	var se *cli.StatusError
	if !errors.As(err, &se) || se.Status != 42 || se.Err != nil {
		t.Fatalf("error %#v, want a silent status 42", err)
	}
	if out != "" {
		t.Errorf("printed %q: docker speaks for itself", out)
	}
	if _, _, err := runWith(t, 0, "--secret", "a", "img"); err != nil {
		t.Errorf("exit 0: %v", err)
	}
}

func TestRunHelp(t *testing.T) {
	got, out, err := runWith(t, 0, "--help")
	if err != nil || got != nil || !strings.Contains(out, "--secret-target-dir") {
		t.Errorf("help: %v %q\n%s", err, got, out)
	}
}

// TestRunAsksTheDaemonFirst: the daemon names the driver when --driver is
// left out, and one that is down, locked or serves another driver stops
// the run before docker is called, with exit status 125 as docker run's
// own failures have.
func TestRunAsksTheDaemonFirst(t *testing.T) {
	got, out, err := runAgainst(t, serving("sd2"), 0, "--secret", "a", "img")
	if err != nil || len(got) < 3 || got[2] != "type=volume,volume-driver=sd2,dst=/run/secrets,volume-nocopy,volume-opt=secrets=a,volume-opt=on-update=none" {
		t.Errorf("driver from the daemon: %v %q\n%s", err, got, out)
	}
	// A managed plugin's NAME:TAG is the daemon's driver too.
	if got, _, err := runAgainst(t, serving("sd2"), 0, "--driver", "sd2:latest", "--secret", "a", "img"); err != nil || !strings.Contains(strings.Join(got, " "), "volume-driver=sd2:latest,") {
		t.Errorf("--driver sd2:latest against sd2: %v %q", err, got)
	}
	// A daemon that predates VolumeDriver: the name given, or the default.
	if got, _, err := runAgainst(t, serving(""), 0, "--secret", "a", "img"); err != nil || !strings.Contains(strings.Join(got, " "), "volume-driver=secretd,") {
		t.Errorf("old daemon: %v %q", err, got)
	}

	down := &fakeclient.Client{StatusFunc: func(context.Context) (api.Status, error) {
		return api.Status{}, errors.New("cannot connect to secretd at unix:///run/secretd/secretd.sock: is the daemon running? (dial unix /run/secretd/secretd.sock: connect: no such file or directory)")
	}}
	locked := &fakeclient.Client{StatusFunc: func(context.Context) (api.Status, error) {
		return api.Status{Locked: true, VolumeDriver: "secretd"}, nil
	}}
	for _, tc := range []struct {
		name string
		fc   *fakeclient.Client
		args []string
		msg  string
	}{
		{"daemon down", down, []string{"--secret", "a", "img"}, "cannot connect to secretd at unix:///run/secretd/secretd.sock: is the daemon running?"},
		{"locked", locked, []string{"--secret", "a", "img"}, "secretd is locked: run 'secretd unlock' first; nothing was started"},
		{"mistyped driver", serving("secretd"), []string{"--driver", "secretdd", "--secret", "a", "img"},
			`volume driver "secretdd" is not the one secretd serves: the daemon serves "secretd"; leave out --driver to use it`},
		{"empty driver", serving("secretd"), []string{"--driver", "", "--secret", "a", "img"}, "--driver must not be empty"},
	} {
		got, _, err := runAgainst(t, tc.fc, 0, tc.args...)
		var se *cli.StatusError
		if got != nil || !errors.As(err, &se) || se.Status != 125 || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: ran %q, error %v; want status 125 with %q and no docker", tc.name, got, err, tc.msg)
		}
	}
	// Bad input is the user's to fix first, whatever the daemon's state.
	if _, _, err := runAgainst(t, down, 0, "--secret", "source=x,mode=999", "img"); err == nil || !strings.Contains(err.Error(), `mode "999"`) {
		t.Errorf("bad --secret with the daemon down: %v", err)
	}
}

// onUpdateOf reads docker run's arguments as docker does, the values of
// other flags included.
func TestOnUpdateOf(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		label string
		known bool
	}{
		{[]string{"img"}, "", true},
		{[]string{"-it", "--label", "secretd.on-update=restart", "img"}, "restart", true},
		{[]string{"-itl", "secretd.on-update=restart", "img"}, "restart", true},
		{[]string{"-lsecretd.on-update", "img"}, "", true},
		{[]string{"--label", "other=x", "-e", "secretd.on-update=restart", "img"}, "", true},
		{[]string{"-eA=1", "-l", "secretd.on-update=none", "img"}, "none", true},
		{[]string{"--label-file=f", "img"}, "", false},
		{[]string{"--label-file", "f", "--label", "secretd.on-update=restart", "img"}, "restart", true},
	} {
		label, known := onUpdateOf(tc.args)
		if label != tc.label || known != tc.known {
			t.Errorf("%q: %q %v, want %q %v", tc.args, label, known, tc.label, tc.known)
		}
	}
}
