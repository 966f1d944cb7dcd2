package cli

import (
	"errors"
	"fmt"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/secretd/secretd/internal/forward"
)

// RunForeground runs bin with args on the CLI's standard streams and
// returns its exit status (128+N when a signal N ended it); what names it
// in an error. As system(3) does, the terminal's SIGINT and SIGQUIT reach
// the child too, which acts on them (docker forwards them to the
// container, compose stops its containers), so secretd only ignores them
// and outlives it; SIGTERM and SIGHUP sent to secretd alone are passed on.
func (c *Cli) RunForeground(what, bin string, args []string) (int, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = c.In, c.Out, c.Err
	signal.Ignore(syscall.SIGINT, syscall.SIGQUIT)
	defer signal.Reset(syscall.SIGINT, syscall.SIGQUIT)
	err := forward.Run(cmd, syscall.SIGTERM, syscall.SIGHUP)
	if cmd.Process == nil {
		return 0, &StatusError{Status: 126, Err: fmt.Errorf("start %s: %w", what, err)}
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if st, ok := ee.Sys().(syscall.WaitStatus); ok && st.Signaled() {
			return 128 + int(st.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	return 0, err
}
