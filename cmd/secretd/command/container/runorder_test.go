package container

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/secretd/secretd/cmd/secretd/cli"
)

// TestRunFlagOrder: a --secret among docker's flags is not taken for
// secretd's; the refusal says where secretd's flags go and shows the
// command that works, which then runs what the user meant.
func TestRunFlagOrder(t *testing.T) {
	ran := false
	old := execDocker
	execDocker = func(*cli.Cli, []string) (int, error) { ran = true; return 0, nil }
	t.Cleanup(func() { execDocker = old })
	run := func(args ...string) error {
		var out bytes.Buffer
		root := &cobra.Command{Use: "secretd", SilenceErrors: true, SilenceUsage: true}
		root.AddCommand(NewRunCommand(cli.NewCli(strings.NewReader(""), &out, &out).WithClient(serving("secretd"))))
		root.SetArgs(append([]string{"run"}, args...))
		root.SetOut(&out)
		root.SetErr(&out)
		return root.Execute()
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--rm", "--network", "none", "--secret", "x", "img"},
			"try: secretd run --secret x -- --rm --network none img"},
		{[]string{"--driver", "sd2", "-d", "--secret=source=a,target=b c", "--secret-target-dir", "/etc/app", "img", "sh", "-c", "cat /etc/app/*"},
			"try: secretd run --driver sd2 '--secret=source=a,target=b c' --secret-target-dir /etc/app -- -d img sh -c 'cat /etc/app/*'"},
		// After "--" everything is docker's, even a --secret.
		{[]string{"-d", "--secret", "x", "--", "img", "--secret", "y"},
			"try: secretd run --secret x -- -d -- img --secret y"},
	} {
		ran = false
		err := run(tc.args...)
		var se *cli.StatusError
		if !errors.As(err, &se) || se.Status != 125 || ran {
			t.Fatalf("%q: %v (ran docker: %v), want a refusal with status 125", tc.args, err, ran)
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "secretd run takes its own flags (--secret ...) first, before docker run's or before '--': here --secret sits among docker run's arguments\n") ||
			!strings.HasSuffix(msg, "\n"+tc.want) {
			t.Errorf("%q:\n got %s\nwant the flag order and %q", tc.args, msg, tc.want)
		}
	}

	// The corrected command runs.
	ran = false
	if err := run("--secret", "x", "--", "--rm", "--network", "none", "img"); err != nil || !ran {
		t.Errorf("corrected command: %v (ran docker: %v)", err, ran)
	}
	// With no --secret anywhere the refusal stays the plain one.
	if err := run("--rm", "img"); err == nil || err.Error() != errNoSecret.Error() {
		t.Errorf("no --secret at all: %v", err)
	}
}
