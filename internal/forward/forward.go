// Package forward runs a child process in the foreground of this one,
// passing on the signals meant for both.
package forward

import (
	"os"
	"os/exec"
	"os/signal"
)

// Run starts cmd, sends it each of sigs that this process receives until
// it exits, and returns what Wait returns. When the start fails, its error
// is returned and cmd.Process stays nil.
func Run(cmd *exec.Cmd, sigs ...os.Signal) error {
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, sigs...)
	defer signal.Stop(ch)
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-ch:
				cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	return err
}
