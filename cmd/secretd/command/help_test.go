package command

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/cmd/secretd/internal/fakeclient"
)

// TestEveryCommandHasExamples walks the whole tree, cobra's help and
// completion commands included: --help and the man pages show each
// command's examples.
func TestEveryCommandHasExamples(t *testing.T) {
	root := newFullRoot(cli.NewCli(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{}))
	var walk func(*cobra.Command)
	seen := 0
	walk = func(c *cobra.Command) {
		if c.Hidden {
			return
		}
		seen++
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%q has no Example", c.CommandPath())
		}
		if c.Short == "" {
			t.Errorf("%q has no Short", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	for _, name := range []string{"help", "completion", "run"} {
		if c, _, err := root.Find([]string{name}); err != nil || c.Name() != name {
			t.Errorf("no %s command: %v", name, err)
		}
	}
	if seen < 20 {
		t.Errorf("walked only %d commands", seen)
	}
}

// TestExecuteSilentStatus passes a wrapped program's exit status through
// without a message of secretd's own.
func TestExecuteSilentStatus(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "docker"), []byte("#!/bin/sh\necho docker-said-this >&2\nexit 7\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	var out, errb bytes.Buffer
	c := cli.NewCli(strings.NewReader(""), &out, &errb).WithClient(&fakeclient.Client{StatusFunc: func(context.Context) (api.Status, error) {
		return api.Status{VolumeDriver: "secretd"}, nil
	}})
	old := os.Args
	defer func() { os.Args = old }()
	os.Args = []string{"secretd", "run", "--secret", "a", "img"}
	if code := Execute(c); code != 7 {
		t.Errorf("exit %d, want docker's 7", code)
	}
	if got := errb.String(); got != "docker-said-this\n" {
		t.Errorf("stderr %q: want docker's words only", got)
	}
	os.Args = []string{"secretd", "run", "--secret", "bad name!", "img"}
	errb.Reset()
	if code := Execute(c); code != 125 || !strings.HasPrefix(errb.String(), "Error: --secret") {
		t.Errorf("bad spec: exit %d, stderr %q", code, errb.String())
	}
}

// TestUsageLines: a usage line says [OPTIONS] once, not "[OPTIONS] [flags]".
func TestUsageLines(t *testing.T) {
	root := newFullRoot(cli.NewCli(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{}))
	for _, path := range [][]string{{"secret", "ls"}, {"ps"}, {"secret", "create"}, {"daemon"}} {
		c, _, err := root.Find(path)
		if err != nil {
			t.Fatal(err)
		}
		if u := c.UseLine(); strings.Contains(u, "[flags]") || !strings.Contains(u, "[OPTIONS]") {
			t.Errorf("%s: usage %q", strings.Join(path, " "), u)
		}
	}
}
