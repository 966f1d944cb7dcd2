package compose

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/cmd/secretd/command/golden"
	"github.com/secretd/secretd/cmd/secretd/internal/fakeclient"
)

const stackFile = `services:
  app:
    image: busybox
    profiles: [web]
    secrets:
      - source: db_password
        target: MYSQL_PASSWORD
        uid: "999"
        mode: 0400
      - source: tls
        target: /etc/nginx/conf.d/site.conf
secrets:
  db_password:
    external: true
    name: todobackend_mysql_password
  tls:
    external: true
`

// run runs `secretd compose args...` in a project directory holding
// stackFile, with compose stubbed: it returns what compose would have run
// (nil when nothing ran) and the translated file it was given.
func run(t *testing.T, v1 bool, code int, args ...string) (ran []string, file, out string, err error) {
	t.Helper()
	return runAgainst(t, nil, v1, code, args...)
}

// runAgainst is run with fc as the daemon (nil: the real client's default).
func runAgainst(t *testing.T, fc cli.APIClient, v1 bool, code int, args ...string) (ran []string, file, out string, err error) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(stackFile), 0o644); err != nil {
		t.Fatal(err)
	}
	// createVolumes runs `docker volume create`: a stand-in docker keeps
	// the host's engine out of it (it would learn the test's driver names).
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "docker"), []byte("#!/bin/sh\necho \"$@\" >> \"$0.log\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	oldFind, oldExec := findCompose, execCompose
	findCompose = func() (composeTool, error) { return composeTool{bin: "/usr/bin/docker-compose", v1: v1}, nil }
	execCompose = func(_ *cli.Cli, bin string, a []string) (int, error) {
		ran = append([]string{bin}, a...)
		if i := slices.Index(a, "--file"); i >= 0 {
			b, _ := os.ReadFile(a[i+1])
			file = string(b)
			ran[i+2] = "TMPFILE"
		}
		return code, nil
	}
	t.Cleanup(func() { findCompose, execCompose = oldFind, oldExec })
	var buf bytes.Buffer
	c := cli.NewCli(strings.NewReader(""), &buf, &buf)
	if fc != nil {
		c = c.WithClient(fc)
	}
	cmd := NewComposeCommand(c)
	cmd.SetArgs(append([]string{"--project-directory", dir, "-p", "todobackend"}, args...))
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	err = cmd.Execute()
	out = strings.ReplaceAll(buf.String(), dir, "PROJECTDIR")
	return slices.Collect(func(yield func(string) bool) {
		for _, s := range ran {
			if !yield(strings.ReplaceAll(s, dir, "PROJECTDIR")) {
				return
			}
		}
	}), file, out, err
}

func TestConfigPrintsTranslation(t *testing.T) {
	for _, v1 := range []bool{true, false} {
		ran, _, out, err := run(t, v1, 0, "--profile", "web", "config")
		if err != nil || ran != nil {
			t.Fatalf("config: %v, ran %q", err, ran)
		}
		name := "config-v2.golden"
		if v1 {
			name = "config-v1.golden"
		}
		golden.Assert(t, name, out)
	}
}

// TestPassesThrough: compose gets the translated file, the project's name
// and directory, the profiles, the command and its flags untouched, and
// its exit status is secretd compose's.
func TestPassesThrough(t *testing.T) {
	ran, file, out, err := run(t, true, 3, "--driver", "sd2", "--profile", "web", "logs", "-f", "--tail", "5", "app")
	var se *cli.StatusError
	if !errors.As(err, &se) || se.Status != 3 || se.Err != nil || out != "" {
		t.Errorf("error %#v, output %q: want compose's status 3, silently", err, out)
	}
	want := []string{"/usr/bin/docker-compose", "--project-name", "todobackend", "--project-directory", "PROJECTDIR", "--file", "TMPFILE",
		"--profile", "web", "logs", "-f", "--tail", "5", "app"}
	if !slices.Equal(ran, want) {
		t.Errorf("ran %q\nwant %q", ran, want)
	}
	if !strings.Contains(file, "driver: sd2") || strings.Contains(file, "secrets:\n  db_password") {
		t.Errorf("compose was given:\n%s", file)
	}
}

func TestRefusesWithoutCommand(t *testing.T) {
	ran, _, _, err := run(t, true, 0)
	if ran != nil || err == nil || !strings.Contains(err.Error(), "secretd compose needs a COMMAND") {
		t.Errorf("no command: %v, ran %q", err, ran)
	}
}

// TestNoVersionAdvice: a Swarm stack file's `version:` is required by
// `docker stack deploy`, so compose-go's advice to remove it is not passed
// on; its other warnings are.
func TestNoVersionAdvice(t *testing.T) {
	var logged bytes.Buffer
	l := logrus.StandardLogger()
	oldOut := l.Out
	l.SetOutput(&logged)
	t.Cleanup(func() { l.SetOutput(oldOut) })
	dir := t.TempDir()
	stack := "version: \"3.7\"\nservices:\n  app:\n    image: busybox:${TAG_NOT_SET_ANYWHERE}\n"
	if err := os.WriteFile(filepath.Join(dir, "stack.yml"), []byte(stack), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := NewComposeCommand(cli.NewCli(strings.NewReader(""), &out, &out))
	cmd.SetArgs([]string{"-f", filepath.Join(dir, "stack.yml"), "config"})
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	if err := cmd.Execute(); err != nil {
		t.Fatalf("config: %v\n%s", err, out.String())
	}
	if strings.Contains(logged.String()+out.String(), "obsolete") {
		t.Errorf("the version advice was passed on:\n%s%s", logged.String(), out.String())
	}
	if !strings.Contains(logged.String(), "TAG_NOT_SET_ANYWHERE") {
		t.Errorf("compose-go's other warnings were dropped too: %q", logged.String())
	}
}

// TestAsksTheDaemonFirst: a command that starts containers fails at once
// when the daemon is down, locked or serves another driver, before compose
// runs; one that stops them runs, saying what a missing daemon costs; and
// the driver comes from the daemon unless --driver names it.
func TestAsksTheDaemonFirst(t *testing.T) {
	const downMsg = "cannot connect to secretd at unix:///run/secretd/secretd.sock: is the daemon running? (dial unix /run/secretd/secretd.sock: connect: no such file or directory)"
	down := &fakeclient.Client{StatusFunc: func(context.Context) (api.Status, error) { return api.Status{}, errors.New(downMsg) }}
	serving := func(name string, locked bool) *fakeclient.Client {
		return &fakeclient.Client{
			StatusFunc: func(context.Context) (api.Status, error) { return api.Status{VolumeDriver: name, Locked: locked}, nil },
			SecretInspectFunc: func(_ context.Context, ref string) (api.Secret, error) {
				return api.Secret{}, nil // every external secret exists
			},
		}
	}
	for _, tc := range []struct {
		name string
		fc   *fakeclient.Client
		args []string
		msg  string
	}{
		{"up, daemon down", down, []string{"up", "-d"}, downMsg},
		{"start, locked", serving("secretd", true), []string{"start"}, "secretd is locked: run 'secretd unlock' first; nothing was started"},
		{"run, mistyped driver", serving("secretd", false), []string{"--driver", "secretdd", "run", "app"}, `volume driver "secretdd" is not the one secretd serves`},
	} {
		ran, _, _, err := runAgainst(t, tc.fc, true, 0, append([]string{"--profile", "web"}, tc.args...)...)
		if ran != nil || err == nil || err.Error() != tc.msg && !strings.HasPrefix(err.Error(), tc.msg) {
			t.Errorf("%s: ran %q, error %v; want %q and compose not run", tc.name, ran, err, tc.msg)
		}
	}

	ran, file, _, err := runAgainst(t, serving("sd2", false), true, 0, "--profile", "web", "up", "-d")
	if err != nil || ran == nil || !strings.Contains(file, "driver: sd2") {
		t.Errorf("up against a daemon serving sd2: %v, ran %q, file:\n%s", err, ran, file)
	}

	ran, _, out, err := runAgainst(t, down, true, 0, "down", "-v")
	if err != nil || ran == nil {
		t.Errorf("down with the daemon down: %v, ran %q: want compose run", err, ran)
	}
	golden.Assert(t, "down-daemon-down.golden", out)
}

// TestNoFileNamesTheStackFile: a command without -f in a directory that
// holds only a stack file (`up -f stack.yml`, then `ps`) says which names
// compose looks for and how to name the stack file, as each command must.
func TestNoFileNamesTheStackFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "stack.yml"), []byte(stackFile), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("COMPOSE_FILE", "")
	os.Unsetenv("COMPOSE_FILE")
	var out bytes.Buffer
	cmd := NewComposeCommand(cli.NewCli(strings.NewReader(""), &out, &out))
	cmd.SetArgs([]string{"--project-directory", dir, "-p", "todobackend", "ps"})
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	err := cmd.Execute()
	want := "no compose file in " + dir + " (looked for compose.yaml, compose.yml, docker-compose.yml, docker-compose.yaml): give it with -f, as for up: secretd compose -f stack.yml ..."
	if err == nil || err.Error() != want {
		t.Errorf("ps without -f: %v\nwant %s", err, want)
	}
}
