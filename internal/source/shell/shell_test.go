package shell_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secretd/secretd/errdefs"
	"github.com/secretd/secretd/internal/source"
	"github.com/secretd/secretd/internal/source/shell"
)

// testHost is the host ID of the drivers the tests make: the requests
// carry it, as the API stamps the commands root names on this host.
const testHost = "host-a"

func newDriver(t *testing.T, cfg shell.Config) *shell.Driver {
	t.Helper()
	d := shell.New(cfg)
	d.Home = t.TempDir()
	d.Trust = shell.Trust{Host: testHost}
	return d
}

func req(opts map[string]string) source.Request {
	return source.Request{SecretID: "sid123", SecretName: "db_password", Options: opts, CommandsBy: testHost}
}

func fetch(t *testing.T, d *shell.Driver, opts map[string]string) (string, error) {
	t.Helper()
	v, err := d.Fetch(context.Background(), req(opts))
	if err != nil {
		if v.Data != nil {
			t.Errorf("a failed fetch returned data")
		}
		return "", err
	}
	defer v.Wipe()
	return string(v.Data), nil
}

func mustFetch(t *testing.T, d *shell.Driver, opts map[string]string) string {
	t.Helper()
	got, err := fetch(t, d, opts)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	return got
}

// wantErr checks the error's kind, that it names the secret and the source,
// that it holds every want and none of the forbidden strings.
func wantErr(t *testing.T, err error, kind error, want []string, forbidden ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", kind)
	}
	if !errors.Is(err, kind) {
		t.Errorf("error %q is not %v", err, kind)
	}
	var se *source.Error
	if !errors.As(err, &se) || se.Secret != "db_password" || se.Source != "shell driver" {
		t.Errorf("error %q does not name the secret and the shell driver", err)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "secret 'db_password': shell driver: ") {
		t.Errorf("error %q does not start by naming the secret and the source", msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not contain %q", msg, w)
		}
	}
	for _, f := range forbidden {
		if strings.Contains(msg, f) {
			t.Errorf("error %q contains %q", msg, f)
		}
	}
}

func run(t *testing.T, env []string, stdin string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = env
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func TestLookupPrintsValue(t *testing.T) {
	d := newDriver(t, shell.Config{})
	if got := mustFetch(t, d, map[string]string{"lookup": "printf 's3cr3t'"}); got != "s3cr3t" {
		t.Errorf("value %q, want s3cr3t", got)
	}
	// stdout is the value as printed, trailing newline included (Podman's rule).
	if got := mustFetch(t, d, map[string]string{"lookup": "echo one | tr a-z A-Z"}); got != "ONE\n" {
		t.Errorf("value %q, want \"ONE\\n\"", got)
	}
}

// TestPass reads a secret from a real pass store, with a throwaway GPG key.
func TestPass(t *testing.T) {
	for _, tool := range []string{"pass", "gpg", "gpgconf"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (make deps installs it): %v", tool, err)
		}
	}
	home, err := os.MkdirTemp("", "pass") // short: gpg-agent's socket path must fit
	if err != nil {
		t.Fatal(err)
	}
	gnupg := filepath.Join(home, ".gnupg")
	if err := os.Mkdir(gnupg, 0o700); err != nil {
		t.Fatal(err)
	}
	env := []string{"HOME=" + home, "GNUPGHOME=" + gnupg, "PATH=" + shell.Path}
	t.Cleanup(func() {
		_ = exec.Command("gpgconf", "--homedir", gnupg, "--kill", "all").Run()
		os.RemoveAll(home)
	})
	run(t, env, "", "gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "",
		"--quick-gen-key", "secretd test <test@secretd.invalid>", "future-default", "default", "never")
	run(t, env, "", "pass", "init", "test@secretd.invalid")
	const canary = "CANARY-pass-7f3a"
	run(t, env, canary+"\n", "pass", "insert", "-m", "db/password")

	d := shell.New(shell.Config{})
	d.Home = home // gpg and pass find ~/.gnupg and ~/.password-store there
	got := mustFetch(t, d, map[string]string{"lookup": "pass show db/password"})
	if got != canary+"\n" {
		t.Errorf("pass show gave %q, want the value inserted", got)
	}

	// The host-wide configuration, by secret name, with the store's place
	// passed through from the daemon's environment.
	t.Setenv("PASSWORD_STORE_DIR", filepath.Join(home, ".password-store"))
	cfg, err := shell.ParseConfig(strings.NewReader("lookup = pass show db/$SECRET_NAME\nenv = PASSWORD_STORE_DIR\nenv = GNUPGHOME=" + gnupg + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	hostwide := shell.New(cfg) // HOME stays the daemon's: the env entries find the store and the key
	v, err := hostwide.Fetch(context.Background(), source.Request{SecretID: "x", SecretName: "password"})
	if err != nil || string(v.Data) != canary+"\n" {
		t.Errorf("configured pass lookup: %q, %v", v.Data, err)
	}

	// A missing entry: pass's own message reaches the daemon's log.
	var logged bytes.Buffer
	d.Log = slog.New(slog.NewTextHandler(&logged, nil))
	_, err = fetch(t, d, map[string]string{"lookup": "pass show db/nothing"})
	wantErr(t, err, source.ErrUnavailable, []string{"the source failed (exit status 1): see the daemon log"})
	if !strings.Contains(logged.String(), "db/nothing is not in the password store") {
		t.Errorf("log: %s", logged.String())
	}
}

// TestAge decrypts an age-encrypted file through the lookup command.
func TestAge(t *testing.T) {
	for _, tool := range []string{"age", "age-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (make deps installs it): %v", tool, err)
		}
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "key.txt")
	run(t, nil, "", "age-keygen", "-o", key)
	pub := strings.TrimSpace(run(t, nil, "", "age-keygen", "-y", key))
	const canary = "CANARY-age-91c2"
	enc := filepath.Join(dir, "db.age")
	run(t, nil, canary, "age", "-r", pub, "-o", enc)

	d := newDriver(t, shell.Config{})
	got := mustFetch(t, d, map[string]string{"lookup": "age -d -i " + key + " " + enc})
	if got != canary {
		t.Errorf("age -d gave %q, want the value encrypted", got)
	}
	// The wrong key: age's complaint is in the daemon's log.
	other := filepath.Join(dir, "other.txt")
	run(t, nil, "", "age-keygen", "-o", other)
	var logged bytes.Buffer
	d.Log = slog.New(slog.NewTextHandler(&logged, nil))
	_, err := fetch(t, d, map[string]string{"lookup": "age -d -i " + other + " " + enc})
	wantErr(t, err, source.ErrUnavailable, []string{"the source failed (exit status 1)"}, canary)
	if !strings.Contains(logged.String(), "no identity matched") || strings.Contains(logged.String(), canary) {
		t.Errorf("log: %s", logged.String())
	}
}

// TestPodmanContract drives the four commands of a host-wide configuration
// through SECRET_ID, the way Podman's shell driver does.
func TestPodmanContract(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(t.TempDir(), "shell-driver.conf")
	text := `# a directory of files, one a secret
lookup = cat "$STORE_DIR/$SECRET_ID"
list   = ls "$STORE_DIR"
store  = cat > "$STORE_DIR/$SECRET_ID"
delete = rm "$STORE_DIR/$SECRET_ID"
timeout = 5s
env = STORE_DIR=` + dir + "\n"
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := shell.LoadConfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	d := newDriver(t, cfg)
	ctx := context.Background()
	if err := d.Validate(ctx, nil); err != nil {
		t.Fatalf("a secret with no options and a configured lookup: %v", err)
	}
	for _, id := range []string{"id1", "id2"} {
		r := source.Request{SecretID: id, SecretName: "n-" + id}
		if err := d.Store(ctx, r, []byte("value of "+id)); err != nil {
			t.Fatalf("store %s: %v", id, err)
		}
	}
	ids, err := d.List(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(ids)
	if strings.Join(ids, ",") != "id1,id2" {
		t.Errorf("list gave %q, want id1,id2", ids)
	}
	v, err := d.Fetch(ctx, source.Request{SecretID: "id2", SecretName: "n-id2"})
	if err != nil || string(v.Data) != "value of id2" {
		t.Fatalf("lookup id2: %q, %v", v.Data, err)
	}
	if err := d.Delete(ctx, source.Request{SecretID: "id1", SecretName: "n-id1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "id1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("id1 still stored after delete: %v", err)
	}
	// A secret's own lookup overrides the configuration's.
	v, err = d.Fetch(ctx, source.Request{SecretID: "id2", SecretName: "n-id2", Options: map[string]string{"lookup": "printf override"}, CommandsBy: testHost})
	if err != nil || string(v.Data) != "override" {
		t.Errorf("per-secret lookup: %q, %v", v.Data, err)
	}
	// A value can be given at create only with both store and delete.
	if err := d.CanStore(nil); err != nil {
		t.Errorf("CanStore with store and delete configured: %v", err)
	}
	lookupOnly := newDriver(t, shell.Config{Lookup: "printf v", Store: "cat > /dev/null"})
	if err := lookupOnly.CanStore(nil); !errors.Is(err, source.ErrCannotStore) || !strings.Contains(err.Error(), "no delete command") {
		t.Errorf("CanStore without a delete command: %v", err)
	}
	if err := lookupOnly.CanStore(map[string]string{"delete": "true"}); err != nil {
		t.Errorf("CanStore with a per-secret delete: %v", err)
	}
}

// TestEnvironment checks the command sees exactly the stated environment.
func TestEnvironment(t *testing.T) {
	t.Setenv("SECRETD_TEST_LEAK", "CANARY-env-leak")
	t.Setenv("SECRETD_TEST_PASSED", "passed-through")
	d := newDriver(t, shell.Config{Env: []string{"SECRETD_TEST_PASSED", "SET_HERE=a=b", "SECRETD_TEST_UNSET"}})
	got := mustFetch(t, d, map[string]string{"lookup": "env | sort"})
	want := []string{
		"HOME=" + d.Home,
		"PATH=" + shell.Path,
		"PWD=/", // set by the shell itself
		"SECRETD_TEST_PASSED=passed-through",
		"SECRET_ID=sid123",
		"SECRET_NAME=db_password",
		"SET_HERE=a=b",
	}
	lines := strings.Split(strings.TrimSpace(got), "\n")
	sort.Strings(lines)
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("environment:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

// TestCommandNotInArguments checks a token written in the lookup is not in
// the shell's argv (world-readable in /proc) nor in its children's env.
func TestCommandNotInArguments(t *testing.T) {
	d := newDriver(t, shell.Config{})
	got := mustFetch(t, d, map[string]string{"lookup": `tr '\0' ' ' < /proc/$$/cmdline; env; : CANARY-token-55e1`})
	if strings.Contains(got, "CANARY") {
		t.Errorf("the command text reached argv or the environment:\n%s", got)
	}
	if !strings.Contains(got, "/bin/sh -c") {
		t.Errorf("the check read no argv: %q", got)
	}
}

func TestBadOptions(t *testing.T) {
	d := newDriver(t, shell.Config{})
	ctx := context.Background()
	cases := []struct {
		name string
		opts map[string]string
		want string
	}{
		{"no lookup", nil, "no lookup command: give one with --driver-opt lookup='COMMAND' or in /etc/secretd/shell-driver.conf"},
		{"empty lookup", map[string]string{"lookup": ""}, "the lookup option is empty"},
		{"blank lookup", map[string]string{"lookup": "  "}, "the lookup option is empty"},
		{"unknown option", map[string]string{"lookup": "true", "lookpu": "x"}, `unknown shell driver option "lookpu"`},
		{"bad timeout", map[string]string{"lookup": "true", "timeout": "soon"}, `timeout "soon" is not a duration`},
		{"zero timeout", map[string]string{"lookup": "true", "timeout": "0s"}, "out of range"},
		{"huge timeout", map[string]string{"lookup": "true", "timeout": "1h"}, "out of range"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := d.Validate(ctx, c.opts)
			if !errors.Is(err, source.ErrInvalidOptions) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("validate: %v, want %q", err, c.want)
			}
			_, err = fetch(t, d, c.opts)
			wantErr(t, err, source.ErrInvalidOptions, []string{c.want})
		})
	}

	// A configuration may keep commands to itself.
	deny := newDriver(t, shell.Config{Lookup: "printf x", DenySecretCommands: true})
	if err := deny.Validate(ctx, map[string]string{"lookup": "id"}); !errors.Is(err, source.ErrInvalidOptions) || !strings.Contains(err.Error(), "denies per-secret commands") {
		t.Errorf("denied per-secret command: %v", err)
	}
	if got := mustFetch(t, deny, map[string]string{"timeout": "3s"}); got != "x" {
		t.Errorf("configured lookup under deny: %q", got)
	}
}

// TestCommandFails: a failed command's stderr goes to the daemon's log,
// clipped and with the value cut out, and never into the error, which an
// API client reads: a lookup may print what only root can read.
func TestCommandFails(t *testing.T) {
	d := newDriver(t, shell.Config{})
	var logged bytes.Buffer
	d.Log = slog.New(slog.NewTextHandler(&logged, nil))
	_, err := fetch(t, d, map[string]string{"lookup": "echo 'vault: permission denied CANARY-stderr-a0' >&2; exit 3 # CANARY-token-a1"})
	wantErr(t, err, source.ErrUnavailable, []string{"the source failed (exit status 3): see the daemon log"}, "CANARY", "permission denied")
	if !strings.Contains(logged.String(), "vault: permission denied CANARY-stderr-a0") || !strings.Contains(logged.String(), "op=lookup") ||
		!strings.Contains(logged.String(), "secret=db_password") || strings.Contains(logged.String(), "CANARY-token") {
		t.Errorf("the log should hold the command's stderr, the op and the secret, never the command: %s", logged.String())
	}

	// A command that echoes the value to stderr too: the value is redacted
	// in the log as well.
	logged.Reset()
	_, err = fetch(t, d, map[string]string{"lookup": "echo CANARY-value-b2; echo got CANARY-value-b2 >&2; exit 1"})
	wantErr(t, err, source.ErrUnavailable, []string{"see the daemon log"}, "CANARY", "got")
	if !strings.Contains(logged.String(), "got [redacted]") || strings.Contains(logged.String(), "CANARY") {
		t.Errorf("log: %s", logged.String())
	}
	// So is a value a store command was given on stdin.
	logged.Reset()
	err = d.Store(context.Background(), req(map[string]string{"lookup": "true", "store": "echo stored; cat >&2; exit 1", "delete": "true"}), []byte("CANARY-stdin-c3"))
	wantErr(t, err, source.ErrUnavailable, []string{"the source failed (exit status 1)"}, "CANARY")
	if strings.Contains(logged.String(), "CANARY") || !strings.Contains(logged.String(), "[redacted]") {
		t.Errorf("the stored value reached the log: %s", logged.String())
	}

	// stderr is cut short in the log.
	logged.Reset()
	_, err = fetch(t, d, map[string]string{"lookup": "head -c 100000 /dev/zero | tr '\\0' e >&2; exit 1"})
	wantErr(t, err, source.ErrUnavailable, nil, "eee")
	if !strings.Contains(logged.String(), "eee...") || logged.Len() > 2048 {
		t.Errorf("log of a command with 100000 bytes of stderr: %d bytes", logged.Len())
	}

	_, err = fetch(t, d, map[string]string{"lookup": "kill -9 $$"})
	wantErr(t, err, source.ErrUnavailable, []string{"the source failed (killed by signal: killed): see the daemon log"})
}

// TestOnlyTrustedCommandsRun: a per-secret command runs only when the host
// that stamped it is trusted: this host, on a store of its own any stamp;
// on a shared store this host or a host --trust-commands-from names. A
// command nobody stamped (a secret from before the stamp) never runs. The
// configuration's commands run whoever created the secret.
func TestOnlyTrustedCommandsRun(t *testing.T) {
	dir := t.TempDir()
	ran := filepath.Join(dir, "ran")
	cmd := map[string]string{"lookup": "touch " + ran + "; printf v"}
	ctx := context.Background()
	try := func(trust shell.Trust, by string) error {
		d := newDriver(t, shell.Config{})
		d.Trust = trust
		v, err := d.Fetch(ctx, source.Request{SecretID: "sid", SecretName: "db_password", Options: cmd, CommandsBy: by})
		v.Wipe()
		_, serr := os.Stat(ran)
		if (err == nil) != (serr == nil) {
			t.Errorf("trust %+v, stamp %q: fetch %v, but the command ran: %v", trust, by, err, serr == nil)
		}
		os.Remove(ran)
		return err
	}
	local := shell.Trust{Host: "a"}
	shared := shell.Trust{Host: "a", Shared: true}
	for _, c := range []struct {
		trust shell.Trust
		by    string
		want  string // "" runs
	}{
		{local, "a", ""},
		{local, "b", ""},
		{local, "", "no host's root is recorded as having named it"},
		{shared, "a", ""},
		{shared, "b", `was named on host "b"`},
		{shared, "", "recreate the secret as root"},
		{shell.Trust{Host: "a", Shared: true, Hosts: []string{"b"}}, "b", ""},
		{shell.Trust{Host: "a", Shared: true, Hosts: []string{"c"}}, "b", "--trust-commands-from b"},
		{shell.Trust{Host: "a", Shared: true, Hosts: []string{shell.TrustAll}}, "b", ""},
		{shell.Trust{}, "", "recreate the secret as root"},
	} {
		err := try(c.trust, c.by)
		if c.want == "" {
			if err != nil {
				t.Errorf("trust %+v, stamp %q: %v", c.trust, c.by, err)
			}
			continue
		}
		wantErr(t, err, errdefs.ErrForbidden, []string{c.want})
	}
	// The host's configuration is root's: its commands run for anyone.
	d := newDriver(t, shell.Config{Lookup: "printf conf"})
	d.Trust = shared
	if v, err := d.Fetch(ctx, source.Request{SecretID: "sid", SecretName: "x", Options: map[string]string{"timeout": "5s"}}); err != nil || string(v.Data) != "conf" {
		t.Errorf("configured lookup on an unstamped secret: %q, %v", v.Data, err)
	}
	if shell.NamesCommands(map[string]string{"timeout": "5s"}) || !shell.NamesCommands(map[string]string{"delete": "x"}) {
		t.Error("NamesCommands: only lookup, list, store and delete are commands")
	}
}

func TestValueLimits(t *testing.T) {
	d := newDriver(t, shell.Config{})
	_, err := fetch(t, d, map[string]string{"lookup": "true"})
	wantErr(t, err, source.ErrInvalidValue, []string{"the source returned an empty value"})

	max := strconv.Itoa(source.MaxSize - 1)
	got := mustFetch(t, d, map[string]string{"lookup": "head -c " + max + " /dev/zero"})
	if len(got) != source.MaxSize-1 {
		t.Errorf("got %d bytes, want %d", len(got), source.MaxSize-1)
	}
	_, err = fetch(t, d, map[string]string{"lookup": "head -c " + strconv.Itoa(source.MaxSize) + " /dev/zero"})
	wantErr(t, err, source.ErrInvalidValue, []string{"the lookup command printed 512000 bytes or more"})
	// A command that never stops printing is cut off, not waited for.
	_, err = fetch(t, d, map[string]string{"lookup": "yes", "timeout": "5m"})
	wantErr(t, err, source.ErrInvalidValue, []string{"printed 512000 bytes or more"})
}

// TestTimeoutKillsGroup checks a hanging command and what it started are
// killed at the timeout.
func TestTimeoutKillsGroup(t *testing.T) {
	dir := t.TempDir()
	d := newDriver(t, shell.Config{Timeout: time.Second, Env: []string{"DIR=" + dir}})
	_, err := fetch(t, d, map[string]string{"lookup": `sleep 1000 & echo $! > "$DIR/pid"; echo waiting >&2; wait`})
	wantErr(t, err, source.ErrTimeout, []string{"the lookup command did not finish within 1s and was killed (a slow source may need --driver-opt timeout=30s): see the daemon log"}, "waiting")

	b, rerr := os.ReadFile(filepath.Join(dir, "pid"))
	if rerr != nil {
		t.Fatal(rerr)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	waitGone(t, pid)

	// The caller's cancellation stops the command too.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = d.Fetch(ctx, req(map[string]string{"lookup": "sleep 1000"}))
	if !errors.Is(err, context.Canceled) && !errors.Is(err, source.ErrUnavailable) {
		t.Errorf("cancelled fetch: %v", err)
	}
}

func isZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] == "Z"
}

// TestLeftoversKilled checks that what a command leaves running in its
// process group does not outlive it.
func TestLeftoversKilled(t *testing.T) {
	dir := t.TempDir()
	d := newDriver(t, shell.Config{Env: []string{"DIR=" + dir}})
	if got := mustFetch(t, d, map[string]string{"lookup": `sleep 1000 >/dev/null 2>&1 & echo $! > "$DIR/pid"; printf x`}); got != "x" {
		t.Fatalf("value %q", got)
	}
	b, err := os.ReadFile(filepath.Join(dir, "pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	waitGone(t, pid)
}

// waitGone waits for the kernel to finish a SIGKILL already sent; it does
// not time anything, and fails only if pid is still alive much later.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	for i := 0; ; i++ {
		if syscall.Kill(pid, 0) == syscall.ESRCH || isZombie(pid) {
			return
		}
		if i == 1000 {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("process %d the command started still runs", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestEscapedChildCannotHang checks a child that left the process group and
// holds stdout does not keep the fetch waiting past the timeout.
func TestEscapedChildCannotHang(t *testing.T) {
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Skip("no setsid")
	}
	dir := t.TempDir()
	d := newDriver(t, shell.Config{Timeout: time.Second, Env: []string{"DIR=" + dir}})
	t.Cleanup(func() {
		if b, err := os.ReadFile(filepath.Join(dir, "pid")); err == nil {
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			if pid > 1 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	_, err := fetch(t, d, map[string]string{"lookup": `setsid sleep 1000 & echo $! > "$DIR/pid"; wait`})
	wantErr(t, err, source.ErrTimeout, []string{"did not finish within 1s"})
}
