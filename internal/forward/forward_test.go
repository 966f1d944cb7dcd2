package forward

import (
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"
	"time"
)

// TestRunPassesSignals: a signal this process gets while the child runs
// reaches the child, and Wait's result comes back.
func TestRunPassesSignals(t *testing.T) {
	// Caught here too, so that a signal sent before Run listens never
	// takes the default action (ending the test binary).
	own := make(chan os.Signal, 1)
	signal.Notify(own, syscall.SIGUSR1)
	defer signal.Stop(own)
	cmd := exec.Command("sleep", "30")
	// Sent until the child has ended: one sent before Run listens
	// reaches only this test.
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				syscall.Kill(syscall.Getpid(), syscall.SIGUSR1)
			}
		}
	}()
	err := Run(cmd, syscall.SIGUSR1)
	close(stop)
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("Run: %v, want the child's exit", err)
	}
	if st := ee.Sys().(syscall.WaitStatus); !st.Signaled() || st.Signal() != syscall.SIGUSR1 {
		t.Errorf("child ended %v, want killed by SIGUSR1", st)
	}
}

// TestRunStartFails: a command that cannot start returns its error with
// no process.
func TestRunStartFails(t *testing.T) {
	cmd := exec.Command("/nonexistent/program")
	if err := Run(cmd); err == nil || cmd.Process != nil {
		t.Errorf("Run: %v, process %v; want a start error and no process", err, cmd.Process)
	}
}
