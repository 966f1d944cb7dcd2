// Package shell is secretd's built-in "shell" secret driver: a secret's value
// is the stdout of a command, as with Podman's shell driver.
//
// Commands run through /bin/sh with a small, fixed environment (see Env), in
// their own process group that is killed as a whole at the timeout. The
// command text is handed to the shell through its environment, not its
// arguments, so a token written in a lookup never shows in ps.
//
// Commands run as the daemon's user, so only root names them (see Trust),
// and what a command prints on stderr goes to the daemon's log, never into
// an error an API client reads.
package shell

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secretd/secretd/internal/source"
)

// Name is the driver name secrets are created with: --driver shell.
const Name = "shell"

// Option keys a secret may give with --driver-opt.
const (
	OptLookup  = "lookup"
	OptList    = "list"
	OptStore   = "store"
	OptDelete  = "delete"
	OptTimeout = "timeout"
)

// Path is the PATH every command gets.
const Path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// maxStderr is how much of a command's stderr is kept for the log.
const maxStderr = 4096

// commandVar carries the command text from the daemon to /bin/sh; the shell
// unsets it before running the command, so the command's children never see it.
const commandVar = "SECRETD_SHELL_COMMAND"

// script is what /bin/sh -c runs: the command from commandVar, evaluated in
// the shell itself so it behaves as `sh -c COMMAND` would.
const script = `c=$` + commandVar + `; unset ` + commandVar + `; eval "$c"`

// Driver runs the configured commands. Its zero value is not usable: use New.
type Driver struct {
	// Config is the host-wide configuration.
	Config Config
	// Home is HOME for the commands: the daemon user's home directory.
	Home string
	// LookupEnv reads the daemon's environment for Config.Env entries that
	// pass a variable through; os.LookupEnv by default.
	LookupEnv func(string) (string, bool)
	// Trust says whose per-secret commands run; its zero value runs none.
	Trust Trust
	// Log receives what a failed command printed on stderr, clipped; nil
	// discards it.
	Log *slog.Logger
}

// New returns a driver with cfg and the daemon user's home directory.
func New(cfg Config) *Driver {
	home := "/"
	if u, err := user.Current(); err == nil && u.HomeDir != "" {
		home = u.HomeDir
	}
	return &Driver{Config: cfg, Home: home, LookupEnv: os.LookupEnv}
}

var _ source.Provider = (*Driver)(nil)
var _ source.Validator = (*Driver)(nil)
var _ source.Storer = (*Driver)(nil)

// Validate checks a secret's options: only known keys, commands allowed by
// the configuration, a non-empty lookup from the options or the
// configuration, a timeout in range.
func (d *Driver) Validate(_ context.Context, opts map[string]string) error {
	_, _, err := d.resolve(opts, OptLookup)
	return err
}

// Fetch runs the lookup command; its stdout is the value.
func (d *Driver) Fetch(ctx context.Context, req source.Request) (source.Value, error) {
	out, err := d.run(ctx, req, OptLookup, nil)
	if err != nil {
		return source.Value{}, d.fail(req, err)
	}
	if err := source.CheckValue(out); err != nil {
		clear(out)
		return source.Value{}, d.fail(req, err)
	}
	return source.Value{Data: out}, nil
}

// List runs the list command and returns the IDs it prints, one a line.
func (d *Driver) List(ctx context.Context, opts map[string]string) ([]string, error) {
	out, err := d.run(ctx, source.Request{Options: opts}, OptList, nil)
	if err != nil {
		return nil, &source.Error{Secret: "*", Source: "shell driver", Err: err}
	}
	var ids []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			ids = append(ids, l)
		}
	}
	return ids, nil
}

// CanStore reports whether opts, with the configuration, give both a store
// and a delete command: a value secretd stores it must be able to remove.
func (d *Driver) CanStore(opts map[string]string) error {
	for _, op := range []string{OptStore, OptDelete} {
		if _, _, err := d.resolve(opts, op); err != nil {
			return fmt.Errorf("%w: a secret created with data is kept by the store command and removed by the delete command: %w", source.ErrCannotStore, err)
		}
	}
	return nil
}

// Store runs the store command with data on its stdin, to keep data in the
// backend as req.SecretID. data is not modified; the caller wipes it.
func (d *Driver) Store(ctx context.Context, req source.Request, data []byte) error {
	if err := source.CheckValue(data); err != nil {
		return d.fail(req, err)
	}
	out, err := d.run(ctx, req, OptStore, data)
	clear(out)
	if err != nil {
		return d.fail(req, err)
	}
	return nil
}

// Delete runs the delete command for req.SecretID.
func (d *Driver) Delete(ctx context.Context, req source.Request) error {
	out, err := d.run(ctx, req, OptDelete, nil)
	clear(out)
	if err != nil {
		return d.fail(req, err)
	}
	return nil
}

func (d *Driver) fail(req source.Request, err error) error {
	return &source.Error{Secret: req.SecretName, Source: "shell driver", Err: err}
}

// resolve returns the command for op and the timeout, per-secret options
// first, then the configuration.
func (d *Driver) resolve(opts map[string]string, op string) (string, time.Duration, error) {
	for _, k := range source.OptionKeys(opts) {
		switch k {
		case OptLookup, OptList, OptStore, OptDelete:
			if d.Config.DenySecretCommands {
				return "", 0, fmt.Errorf("%w: the host's shell driver configuration (%s) denies per-secret commands: drop --driver-opt %s and set it there", source.ErrInvalidOptions, DefaultConfigPath, k)
			}
		case OptTimeout:
		default:
			return "", 0, fmt.Errorf("%w: unknown shell driver option %q (known: lookup, list, store, delete, timeout)", source.ErrInvalidOptions, k)
		}
	}
	cmd, given := opts[op]
	if !given {
		cmd = d.commandFor(op)
	}
	if strings.TrimSpace(cmd) == "" {
		if given {
			return "", 0, fmt.Errorf("%w: the %s option is empty: give the command that %s, e.g. --driver-opt lookup='pass show NAME'", source.ErrInvalidOptions, op, purpose(op))
		}
		return "", 0, fmt.Errorf("%w: no %s command: give one with --driver-opt %s='COMMAND' or in %s", source.ErrInvalidOptions, op, op, DefaultConfigPath)
	}
	timeout := d.Config.Timeout
	if s, ok := opts[OptTimeout]; ok {
		t, err := parseTimeout(s)
		if err != nil {
			return "", 0, fmt.Errorf("%w: %w", source.ErrInvalidOptions, err)
		}
		timeout = t
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return cmd, timeout, nil
}

func (d *Driver) commandFor(op string) string {
	switch op {
	case OptLookup:
		return d.Config.Lookup
	case OptList:
		return d.Config.List
	case OptStore:
		return d.Config.Store
	case OptDelete:
		return d.Config.Delete
	}
	return ""
}

func purpose(op string) string {
	switch op {
	case OptLookup:
		return "prints the secret on stdout"
	case OptList:
		return "lists the secret IDs"
	case OptStore:
		return "stores stdin as SECRET_ID"
	default:
		return "deletes SECRET_ID"
	}
}

// Env is the environment a command gets for req: PATH, HOME, SECRET_ID,
// SECRET_NAME, then the configuration's env entries, which may override
// them. Nothing else of the daemon's environment is passed.
func (d *Driver) Env(req source.Request) []string {
	env := map[string]string{
		"PATH":        Path,
		"HOME":        d.Home,
		"SECRET_ID":   req.SecretID,
		"SECRET_NAME": req.SecretName,
	}
	lookup := d.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	for _, e := range d.Config.Env {
		name, value, set := strings.Cut(e, "=")
		if !set {
			v, ok := lookup(name)
			if !ok {
				continue
			}
			value = v
		}
		env[name] = value
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// run runs op's command and returns its stdout, at most source.MaxSize-1
// bytes. A command the secret's options name runs only when Trust accepts
// who named it. The error says how the command failed, never its stderr
// (logged, clipped), the command text (it may hold a token) nor stdout.
func (d *Driver) run(ctx context.Context, req source.Request, op string, stdin []byte) ([]byte, error) {
	command, timeout, err := d.resolve(req.Options, op)
	if err != nil {
		return nil, err
	}
	if _, own := req.Options[op]; own {
		if err := d.Trust.check(req, op); err != nil {
			return nil, err
		}
	}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	cmd := exec.CommandContext(tctx, "/bin/sh", "-c", script)
	cmd.Env = append(d.Env(req), commandVar+"="+command)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Kill the whole group: a pipeline's or a wrapper's children too.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// A child that left the group (setsid) and holds stdout open cannot keep
	// us waiting: exec closes our end of the pipes this long after the kill.
	cmd.WaitDelay = time.Second
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	stderr := &cappedBuffer{max: maxStderr}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", source.ErrUnavailable, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%w: cannot start /bin/sh: %w", source.ErrUnavailable, err)
	}
	out, over, rerr := source.ReadLimited(stdout, source.MaxSize-1)
	if over || rerr != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	// Wait for the shell without reaping it, so its PID (the group's ID)
	// cannot be reused yet, and kill whatever the command left running in
	// its group. The timeout's kill still ends a shell that hangs here.
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, cmd.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			break
		}
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	werr := cmd.Wait()
	// The command's stderr may say anything it can read as root (a key
	// file, another user's token): it goes to the daemon's log only, with
	// the value it printed or was given cut out.
	detail := source.Detail(stderr.Bytes(), out, stdin)
	stderr.wipe()
	failed := func(kind error, what string) error {
		clear(out)
		d.logFailure(req, op, what, detail)
		return fmt.Errorf("%w: %s: see the daemon log", kind, what)
	}

	switch {
	case over:
		clear(out)
		return nil, fmt.Errorf("%w: the %s command printed %d bytes or more, the limit is less than %d bytes (500 KiB)", source.ErrInvalidValue, op, source.MaxSize, source.MaxSize)
	case errors.Is(tctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil:
		return nil, failed(source.ErrTimeout, fmt.Sprintf("the %s command did not finish within %s and was killed (a slow source may need --driver-opt timeout=30s)", op, timeout))
	case ctx.Err() != nil:
		clear(out)
		return nil, fmt.Errorf("%w: the %s command was stopped: %w", source.ErrUnavailable, op, ctx.Err())
	case werr != nil:
		var ee *exec.ExitError
		if errors.As(werr, &ee) {
			if ee.Exited() {
				return nil, failed(source.ErrUnavailable, fmt.Sprintf("the source failed (exit status %d)", ee.ExitCode()))
			}
			return nil, failed(source.ErrUnavailable, fmt.Sprintf("the source failed (killed by %s)", ee.ProcessState.String()))
		}
		clear(out)
		return nil, fmt.Errorf("%w: the %s command: %w", source.ErrUnavailable, op, werr)
	case rerr != nil:
		clear(out)
		return nil, fmt.Errorf("%w: reading the %s command's output: %w", source.ErrUnavailable, op, rerr)
	}
	return out, nil
}

// logFailure puts a failed command's stderr, clipped and with its value cut
// out, in the daemon's log: the one place it goes.
func (d *Driver) logFailure(req source.Request, op, what, stderr string) {
	if d.Log == nil {
		return
	}
	d.Log.Warn("shell driver command failed", "secret", req.SecretName, "op", op, "reason", what, "stderr", stderr)
}

// cappedBuffer keeps the first max bytes written and drops the rest, so a
// command writing a lot to stderr is never blocked nor stored whole.
type cappedBuffer struct {
	max int
	buf []byte
}

// Write keeps what fits and reports all of p written.
func (b *cappedBuffer) Write(p []byte) (int, error) {
	if b.buf == nil {
		b.buf = make([]byte, 0, b.max) // never grown, so never copied
	}
	if room := b.max - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// Bytes returns what was kept.
func (b *cappedBuffer) Bytes() []byte { return b.buf }

func (b *cappedBuffer) wipe() { clear(b.buf); b.buf = nil }
