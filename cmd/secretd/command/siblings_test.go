package command

import (
	"bytes"
	"strings"
	"testing"

	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/cmd/secretd/sibling"
)

// TestStubsMatch: secretd lists a sibling's command as the sibling shows
// it, so `secretd --help` and the man pages agree.
func TestStubsMatch(t *testing.T) {
	c := cli.NewCli(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{})
	full := newFullRoot(c)
	stubs := NewRootCommand(c)
	for _, s := range siblingCommands {
		name := strings.Fields(s.use)[0]
		real, _, err := full.Find([]string{name})
		if err != nil || real.Name() != name {
			t.Fatalf("no %s in the full tree: %v", name, err)
		}
		if real.Annotations[siblingAnnotation] != "" {
			t.Errorf("%s is a stub in the full tree", name)
		}
		if real.Use != s.use || real.Short != s.short {
			t.Errorf("stub %s says %q, %q; the command %q, %q", name, s.use, s.short, real.Use, real.Short)
		}
		stub, _, err := stubs.Find([]string{name})
		if err != nil || stub.Annotations[siblingAnnotation] != s.binary {
			t.Errorf("%s is no stub of %s in secretd's tree: %v", name, s.binary, err)
		}
	}
}

// TestSiblingOf: which command lines go to a sibling binary.
func TestSiblingOf(t *testing.T) {
	root := NewRootCommand(cli.NewCli(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{}))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"daemon", "--data-root", "/x"}, sibling.Daemon},
		{[]string{"-H", "unix:///x.sock", "daemon"}, sibling.Daemon},
		{[]string{"daemon", "--help"}, sibling.Daemon},
		{[]string{"help", "daemon"}, sibling.Daemon},
		{[]string{"store", "migrate", "--from", "a"}, sibling.Daemon},
		{[]string{"__complete", "store", "migrate", "--"}, sibling.Daemon},
		{[]string{"compose", "up", "-d"}, sibling.Compose},
		{[]string{"__completeNoDesc", "compose", ""}, sibling.Compose},
		{[]string{"secret", "ls"}, ""},
		{[]string{"--version"}, ""},
		{[]string{"help"}, ""},
		{[]string{"__complete", "da"}, ""},
		{[]string{"nosuch"}, ""},
		{nil, ""},
	} {
		if got := siblingOf(root, tc.args); got != tc.want {
			t.Errorf("%q: sibling %q, want %q", tc.args, got, tc.want)
		}
	}
}
