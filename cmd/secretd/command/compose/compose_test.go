package compose

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/cmd/secretd/command/golden"
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
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(stackFile), 0o644); err != nil {
		t.Fatal(err)
	}
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
