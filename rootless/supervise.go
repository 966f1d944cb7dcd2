package rootless

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// EngineGoneStatus is the exit status of the daemon proper when its engine
// stopped: the supervisor then waits for the engine's next start and
// starts the daemon again in the new namespaces.
const EngineGoneStatus = 75

// EnginePIDFlag names the hidden daemon flag that marks the daemon proper,
// started by the supervisor inside the namespaces of this engine pid.
const EnginePIDFlag = "rootless-engine-pid"

// Supervisor runs on the host as the user. It starts the daemon proper in
// the rootless engine's namespaces and starts it again whenever the engine
// restarts, since the old namespaces die with the old engine.
type Supervisor struct {
	// RuntimeDir is $XDG_RUNTIME_DIR, where the engine's pid and socket are.
	RuntimeDir string
	// Args are the arguments of this secretd after the program name; the
	// daemon proper gets them again, plus the engine pid flag.
	Args []string
	// Log tells of the engine's stops and starts.
	Log *slog.Logger
	// Stdout and Stderr are the daemon proper's: its logs and the one-time
	// unlock key of a new autolocked store.
	Stdout, Stderr io.Writer
	// Poll is how often a stopped engine is looked for (default 250ms).
	Poll time.Duration
}

// Run refuses root and a missing or stale engine, then serves until ctx
// ends or the daemon proper fails.
func (s Supervisor) Run(ctx context.Context) error {
	if os.Geteuid() == 0 {
		return errors.New("--rootless is for the rootless Docker engine of an unprivileged user: run it as that user, not as root (as root, run 'secretd daemon' without --rootless)")
	}
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		return errors.New("nsenter not found: --rootless needs it to enter the engine's namespaces (install util-linux)")
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the secretd binary: %w", err)
	}
	if s.Poll == 0 {
		s.Poll = 250 * time.Millisecond
	}
	if s.Log == nil {
		s.Log = slog.New(slog.DiscardHandler)
	}
	eng, err := FindEngine(s.RuntimeDir)
	if err != nil {
		return err
	}
	for {
		if err := eng.Answers(ctx); err != nil {
			s.Log.Info("the rootless engine does not answer yet: joining it anyway, since a starting dockerd waits for its volume plugins", "engine_pid", eng.PID, "err", err)
		}
		s.Log.Info("joining the rootless engine's namespaces", "engine_pid", eng.PID, "engine", eng.Host)
		status, err := s.runInner(ctx, nsenter, exe, eng)
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		if status != EngineGoneStatus {
			return fmt.Errorf("secretd in the rootless engine's namespaces exited with status %d (its log above says why)", status)
		}
		s.Log.Warn("the rootless engine stopped: secretd wiped the mounts of its namespace and waits for it to start again", "engine_pid", eng.PID)
		if eng, err = s.waitEngine(ctx); err != nil {
			return nil // ctx ended while waiting
		}
	}
}

// runInner runs the daemon proper in eng's namespaces until it exits,
// passing on a stop.
func (s Supervisor) runInner(ctx context.Context, nsenter, exe string, eng Engine) (int, error) {
	pid := strconv.Itoa(eng.PID)
	args := append([]string{"-U", "--preserve-credentials", "-m", "-t", pid, "--", exe}, s.Args...)
	args = append(args, "--"+EnginePIDFlag+"="+pid)
	cmd := exec.Command(nsenter, args...)
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = s.Stdout, s.Stderr
	// nsenter execs secretd in place (no pid namespace, no --fork), so
	// this is the daemon proper's pid, and it stops if the supervisor dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start secretd in the rootless engine's namespaces: %w", err)
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			cmd.Process.Signal(syscall.SIGTERM)
		case <-done:
		}
	}()
	err := cmd.Wait()
	close(done)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	if err != nil {
		return 0, fmt.Errorf("secretd in the rootless engine's namespaces: %w", err)
	}
	return 0, nil
}

// waitEngine waits until a new engine answers.
func (s Supervisor) waitEngine(ctx context.Context) (Engine, error) {
	t := time.NewTicker(s.Poll)
	defer t.Stop()
	for {
		eng, err := FindEngine(s.RuntimeDir)
		if err == nil {
			return eng, nil
		}
		select {
		case <-ctx.Done():
			return Engine{}, ctx.Err()
		case <-t.C:
		}
	}
}
