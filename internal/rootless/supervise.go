package rootless

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/secretd/secretd/internal/atomicfile"
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
	// StateDir keeps the engine API version last learned (the daemon's
	// data root); empty keeps it in memory only.
	StateDir string
}

// apiVersionFile holds the engine's API version as last learned. The
// daemon proper gets it as DOCKER_API_VERSION, so it never negotiates: the
// docker client negotiates on its first request under a lock that no
// request deadline bounds, and a starting engine, which answers nothing
// until the Mounts of its restarted containers return, would hold a
// Mount's bounded container lookup behind the event stream's unbounded one.
const apiVersionFile = "engine-api-version"

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
	version := s.loadVersion()
	for {
		learned := false
		if v, err := eng.APIVersion(ctx); err == nil {
			version, learned = v, true
			s.saveVersion(v)
		} else {
			s.Log.Info("the rootless engine does not answer yet: joining it anyway, since a starting dockerd waits for its volume plugins", "engine_pid", eng.PID, "err", err)
		}
		s.Log.Info("joining the rootless engine's namespaces", "engine_pid", eng.PID, "engine", eng.Host, "api_version", version)
		status, v, err := s.runInner(ctx, nsenter, exe, eng, version, learned)
		if err != nil {
			return err
		}
		if v != "" {
			version = v
		}
		if ctx.Err() != nil {
			return nil
		}
		if status != EngineGoneStatus && checkDockerd(eng.PID) == nil {
			return fmt.Errorf("secretd in the rootless engine's namespaces exited with status %d (its log above says why)", status)
		}
		// Also when the engine died before the daemon proper could join
		// it (nsenter then fails): there is nothing to wipe.
		s.Log.Warn("the rootless engine stopped: secretd wiped the mounts of its namespace and waits for it to start again", "engine_pid", eng.PID)
		if eng, err = s.waitEngine(ctx); err != nil {
			return nil // ctx ended while waiting
		}
	}
}

// runInner runs the daemon proper in eng's namespaces until it exits,
// passing on a stop. Unless version was learned from eng itself, it asks
// eng for its version once it answers, and returns it for the next start.
func (s Supervisor) runInner(ctx context.Context, nsenter, exe string, eng Engine, version string, learned bool) (int, string, error) {
	pid := strconv.Itoa(eng.PID)
	args := append([]string{"-U", "--preserve-credentials", "-m", "-t", pid, "--", exe}, s.Args...)
	args = append(args, "--"+EnginePIDFlag+"="+pid)
	cmd := exec.Command(nsenter, args...)
	cmd.Stdin = nil
	cmd.Env = os.Environ()
	if version != "" && os.Getenv("DOCKER_API_VERSION") == "" {
		cmd.Env = append(cmd.Env, "DOCKER_API_VERSION="+version)
	}
	cmd.Stdout, cmd.Stderr = s.Stdout, s.Stderr
	// nsenter execs secretd in place (no pid namespace, no --fork), so
	// this is the daemon proper's pid, and it stops if the supervisor dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return 0, "", fmt.Errorf("start secretd in the rootless engine's namespaces: %w", err)
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			cmd.Process.Signal(syscall.SIGTERM)
		case <-done:
		}
	}()
	learnedc := make(chan string, 1)
	go func() {
		defer close(learnedc)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for !learned {
			select {
			case <-done:
				return
			case <-t.C:
			}
			if v, err := eng.APIVersion(ctx); err == nil {
				s.saveVersion(v)
				learnedc <- v
				return
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	newVersion := <-learnedc
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), newVersion, nil
		}
		return ee.ExitCode(), newVersion, nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("secretd in the rootless engine's namespaces: %w", err)
	}
	return 0, newVersion, nil
}

func (s Supervisor) loadVersion() string {
	if s.StateDir == "" {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(s.StateDir, apiVersionFile))
	if err != nil {
		return ""
	}
	v := strings.TrimSpace(string(b))
	if !apiVersionRE.MatchString(v) {
		return ""
	}
	return v
}

func (s Supervisor) saveVersion(v string) {
	if s.StateDir == "" || !apiVersionRE.MatchString(v) || s.loadVersion() == v {
		return
	}
	if err := os.MkdirAll(s.StateDir, 0o700); err != nil {
		s.Log.Warn("cannot keep the engine's API version", "err", err)
		return
	}
	if err := atomicfile.Write(filepath.Join(s.StateDir, apiVersionFile), []byte(v+"\n")); err != nil {
		s.Log.Warn("cannot keep the engine's API version", "err", err)
	}
}

var apiVersionRE = regexp.MustCompile(`^1\.[0-9]{1,3}$`)

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
