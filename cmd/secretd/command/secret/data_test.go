package secret

import (
	"bytes"
	"strings"
	"testing"

	"github.com/secretd/secretd/cmd/secretd/cli"
)

// TestGenerateSize: --generate 0 is a size out of range, not "no data
// given"; both create and update word it so, before asking any daemon.
func TestGenerateSize(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"create", "--generate", "0", "x"}, "--generate 0: the size must be at least 1 and at most 383997 bytes"},
		{[]string{"create", "--generate=-3", "x"}, "--generate -3: the size must be at least 1 and at most 383997 bytes"},
		{[]string{"update", "--generate", "0", "x"}, "--generate 0: the size must be at least 1 and at most 383997 bytes"},
		{[]string{"create", "x"}, "no data given: pass a FILE, '-' to read stdin, --from-env VAR or --generate N"},
		{[]string{"create", "--generate", "0", "x", "-"}, "give the data one way only"},
	} {
		var out bytes.Buffer
		c0 := cli.NewCli(strings.NewReader(""), &out, &out)
		// No daemon listens here: reaching it would be a different error.
		c0.Hosts = []string{"unix:///nonexistent/secretd.sock"}
		cmd := NewSecretCommand(c0)
		cmd.SetArgs(c.args)
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		err := cmd.Execute()
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("secret %s: %v, want %q", strings.Join(c.args, " "), err, c.want)
		}
	}
}
