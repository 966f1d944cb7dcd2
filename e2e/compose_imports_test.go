package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// composeWithin is s.compose that gives up after timeout, so a command
// that hangs fails the test instead of stalling the suite.
func (s *stack) composeWithin(timeout time.Duration, args ...string) result {
	s.t.Helper()
	full := []string{"compose", "--driver", s.d.driver, "-p", s.project}
	for _, f := range s.files {
		full = append(full, "-f", filepath.Join(s.dir, f))
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append(full, args...)...)
	cmd.Env = append(os.Environ(), s.env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	}
	if ctx.Err() != nil {
		r.code, r.stderr = -1, r.stderr+"\n(killed: still running after "+timeout.String()+")"
	}
	return r
}

// TestComposeFileImportChecks: a `file:` secret is read only from a
// regular file smaller than 500 KiB, checked before reading: a FIFO (whose
// open would block), a symlink to a device, a file of 500 KiB or more are
// refused at once and import nothing. A symlink to a regular file is
// followed, as docker stack deploy and compose do.
func TestComposeFileImportChecks(t *testing.T) {
	t.Parallel()
	requireCompose(t)
	d := startDaemon(t)
	suffix := strings.TrimPrefix(d.driver, "secretd-e2e-")
	s := newStack(t, d, "sdfile"+suffix, "filesecret.yml")
	key := filepath.Join(s.dir, "site.key")
	for _, c := range []struct {
		name string
		make func() error
		want string
	}{
		{"a FIFO", func() error { return syscall.Mkfifo(key, 0o600) }, "is a named pipe (FIFO), not a regular file"},
		{"a symlink to a device", func() error { return os.Symlink("/dev/zero", key) }, "is a character device, not a regular file"},
		{"a file of 600 KiB", func() error { return os.WriteFile(key, bytes.Repeat([]byte("k"), 600*1024), 0o600) }, "is 614400 bytes: a secret must be smaller than 500 KiB"},
	} {
		os.Remove(key)
		if err := c.make(); err != nil {
			t.Fatal(err)
		}
		if r := s.composeWithin(30*time.Second, "up", "-d"); r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("site.key as %s: want refused saying %q, got %s", c.name, c.want, r)
		}
		if ls := d.mustCLI("", "secret", "ls", "-q"); ls != "" {
			t.Fatalf("site.key as %s: secrets were imported: %q", c.name, ls)
		}
	}
	os.Remove(key)
	real := filepath.Join(s.dir, "real.key")
	if err := os.WriteFile(real, []byte("key-"+suffix), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, key); err != nil {
		t.Fatal(err)
	}
	if r := s.composeWithin(2*time.Minute, "up", "-d"); r.code != 0 {
		t.Fatalf("site.key as a symlink to a regular file: %s", r)
	}
	if got := s.exec("app", "cat /run/secrets/site_key"); got != "key-"+suffix {
		t.Errorf("the container reads %q through the symlinked file", got)
	}
}

// TestComposeUpReportsFailedRotation: when a changed file: secret does not
// reach a running container (its mount broken behind secretd's back),
// `secretd compose up` fails, and so does every later up with the same
// file, while the container still reads the previous version: a second up
// must not report success because there is nothing new to store.
func TestComposeUpReportsFailedRotation(t *testing.T) {
	t.Parallel()
	requireCompose(t)
	d := startDaemon(t)
	suffix := strings.TrimPrefix(d.driver, "secretd-e2e-")
	project := "sdrot" + suffix
	s := newStack(t, d, project, "filesecret.yml")
	key := filepath.Join(s.dir, "site.key")
	if err := os.WriteFile(key, []byte("one-"+suffix), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := s.compose("up", "-d"); r.code != 0 {
		t.Fatalf("secretd compose up -d: %s", r)
	}
	ctr := project + "_app_1"
	if err := unix.Unmount(hostMount(t, d, ctr), unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, []byte("two-"+suffix), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		r := s.compose("up", "-d")
		if r.code == 0 || !strings.Contains(r.stderr, "did not reach 1 container") || !strings.Contains(r.stderr, ctr) {
			t.Errorf("up #%d after the rotation failed: want the failure naming %s, got %s", i+2, ctr, r)
		}
	}
	if got := s.exec("app", "cat /run/secrets/site_key"); got != "one-"+suffix {
		t.Errorf("%s reads %q, want the previous version, as the error says", ctr, got)
	}
}
