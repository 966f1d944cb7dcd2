// Package e2e tests the built secretd binary against a real Docker Engine:
// no fakes. The suite starts a dockerd of its own and runs every test
// against it (DOCKER_HOST), so the host's engine never sees a test
// container, volume or volume driver. Tests that kill or restart an engine
// start one more private dockerd each.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secretd/secretd/secretdtest"
)

var (
	// binary is the secretd built once for the whole run.
	binary string
	// image is the test image: a static busybox imported from a rootfs,
	// because no registry can be reached.
	image = fmt.Sprintf("secretd-e2e:%d", os.Getpid())
)

// runEnv names the run's directory in the test process that runs the tests
// (see TestMain).
const runEnv = "SECRETD_E2E_RUN"

// TestMain runs the suite in a child process with a mount namespace of its
// own. There, /run/docker/plugins is a directory of the run: the suite's
// dockerd finds the test daemons' driver sockets in it, and the host's
// dockerd, which looks in the real one, never sees a test driver. dockerd
// remembers every legacy volume driver it has seen and asks each about
// every volume name it does not know, 15 s for each one gone; a host engine
// that learnt the suite's drivers would stay slow until restarted.
//
// The parent sweeps what killed runs left, waits for the child, removes
// what the child could not (a test timeout exits without cleanup), and
// then checks that the host's engine learnt no volume driver.
func TestMain(m *testing.M) {
	if dir := os.Getenv(runEnv); dir != "" {
		os.Exit(inside(m, dir))
	}
	os.Exit(outside())
}

// outside prepares the run's directory, runs the tests in a child process
// and cleans up after it.
func outside() int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "e2e: must run as root (starts a dockerd, mounts tmpfs, serves Docker plugin sockets)")
		return 1
	}
	for _, tool := range []string{"dockerd", "docker"} {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: %s not found: the suite starts a Docker Engine of its own\n", tool)
			return 1
		}
	}
	base := filepath.Join(os.TempDir(), "secretd-e2e")
	if err := os.MkdirAll(base, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	name := strconv.Itoa(os.Getpid())
	lock, err := lockRun(base, name)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer func() {
		os.Remove(lock.Name())
		lock.Close()
	}()
	sweepRuns(base, name)
	dir := filepath.Join(base, name)
	secretdtest.RemoveTree(dir, logStderr) // a run of a process that had this pid
	// 0755 all the way down: tests run the binary as nobody too.
	if err := os.Mkdir(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}

	host := hostEngineState()
	code := runChild(dir)
	used := runDrivers(dir)
	if err := secretdtest.RemoveTree(dir, logStderr); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		code = max(code, 1)
	}
	if err := host.check(used); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: FAIL: the host's Docker Engine is not as the suite found it:", err)
		code = max(code, 1)
	}
	return code
}

// lockRun holds base/name.lock for as long as this process lives: a run
// directory whose lock is free belongs to a process that is gone.
func lockRun(base, name string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(base, name+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return f, nil
}

// sweepRuns removes what killed runs left under base: their engines,
// shims, containers, secretd daemons and files. Runs still going hold
// their lock and are left alone.
func sweepRuns(base, self string) {
	entries, _ := os.ReadDir(base)
	for _, ent := range entries {
		if !ent.IsDir() || ent.Name() == self {
			continue
		}
		f, err := os.OpenFile(filepath.Join(base, ent.Name()+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			fmt.Fprintf(os.Stderr, "e2e: removing what a killed run left in %s\n", filepath.Join(base, ent.Name()))
			if err := secretdtest.RemoveTree(filepath.Join(base, ent.Name()), logStderr); err != nil {
				fmt.Fprintln(os.Stderr, "e2e:", err)
			} else {
				os.Remove(f.Name())
			}
		}
		f.Close()
	}
}

func logStderr(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "e2e: "+format+"\n", args...)
}

// runChild runs this test binary again, with the same flags, in a new mount
// namespace, and returns its exit code.
func runChild(dir string) int {
	cmd := exec.Command(os.Args[0], os.Args[1:]...)
	// Driver-name slots are the run's own: its drivers live in its own
	// plugin directory (see TestMain).
	cmd.Env = append(os.Environ(), runEnv+"="+dir, secretdtest.SlotDirEnv+"="+filepath.Join(dir, "slots"))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// Go makes every mount of the new namespace private before the exec.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	// An interrupt reaches the whole process group: the child stops its
	// tests, this process waits for it and cleans up.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: start the test process:", err)
		return 1
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return ee.ExitCode()
	default:
		fmt.Fprintln(os.Stderr, "e2e: the test process:", err)
		return 1
	}
}

// inside runs the tests, in the mount namespace runChild made.
func inside(m *testing.M, dir string) int {
	if err := sameMountNamespace(os.Getppid()); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	plugins := filepath.Join(dir, "plugins")
	tmp := filepath.Join(dir, "tmp")
	bin := filepath.Join(dir, "bin")
	for _, d := range []string{plugins, tmp, bin, "/run/docker/plugins"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
	}
	if err := unix.Mount(plugins, "/run/docker/plugins", "", unix.MS_BIND, ""); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: give the run its own plugin directory:", err)
		return 1
	}
	// Everything a test creates in temporary directories (secretd data
	// roots, mount roots, sockets, extra engines) lives in the run's
	// directory, where the next run finds it if this one is killed.
	os.Chmod(tmp, 0o1777)
	os.Setenv("TMPDIR", tmp)

	binary = filepath.Join(bin, "secretd")
	_, self, _, _ := runtime.Caller(0)
	build := exec.Command("go", "build", "-o", binary, "./cmd/secretd")
	build.Dir = filepath.Dir(filepath.Dir(self))
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: build secretd: %v\n%s", err, out)
		return 1
	}

	logPath := filepath.Join(filepath.Dir(dir), filepath.Base(dir)+"-dockerd.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer logFile.Close()
	edir := filepath.Join(dir, "engine")
	if err := os.Mkdir(edir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	e, err := secretdtest.NewEngine(edir, logFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	// Parked driver slots answer the suite's engine until it is gone.
	defer secretdtest.CloseParked()
	defer func() {
		if err := e.Teardown(logStderr); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
		}
	}()
	if err := e.Boot(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: start the suite's Docker Engine: %v (log: %s)\n", err, logPath)
		return 1
	}
	// Every docker and docker-compose command, Docker Go client and secretd
	// daemon of the tests follows DOCKER_HOST; what takes the engine's
	// default socket instead (the compose file and the managed plugin of
	// deploy/ bind it into secretd's container) finds this engine there.
	os.Setenv("DOCKER_HOST", e.Host)
	if err := bindDefaultSocket(strings.TrimPrefix(e.Host, "unix://")); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if err := secretdtest.BusyboxImage([]string{"docker", "-H", e.Host}, image, nil); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: build test image: %v\n", err)
		return 1
	}
	code := m.Run()
	if code == 0 {
		os.Remove(logPath)
	} else {
		fmt.Fprintf(os.Stderr, "e2e: the suite's dockerd logged to %s\n", logPath)
	}
	return code
}

// bindDefaultSocket puts sock over the engine's default socket, in this
// mount namespace only. A host without one gets none: nothing then
// expects it.
func bindDefaultSocket(sock string) error {
	def, err := filepath.EvalSymlinks("/var/run/docker.sock")
	if err != nil {
		return nil
	}
	if err := unix.Mount(sock, def, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind the suite's engine socket over %s: %w", def, err)
	}
	return nil
}

// sameMountNamespace refuses to go on in the mount namespace of pid (the
// parent): binding over /run/docker/plugins there would hide the host's
// plugins from the host's engine.
func sameMountNamespace(pid int) error {
	mine, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return err
	}
	parent, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
	if err != nil {
		return err
	}
	if mine == parent {
		return fmt.Errorf("%s is set but this process shares its parent's mount namespace: unset it", runEnv)
	}
	return nil
}

// hostState is what the suite checks it leaves as it found on the host's
// engine: the volume drivers it knows, and how fast it answers about a
// volume name it does not know.
type hostState struct {
	up      bool
	drivers []string
	fast    bool
}

// unknownVolume is a name no engine knows: looking it up asks every volume
// driver the engine has seen.
var unknownVolume = fmt.Sprintf("secretd-e2e-unknown-%d", os.Getpid())

// unknownLookupLimit is less than the 15 s a dockerd spends on one dead
// driver, so a single one it learnt fails the check.
const unknownLookupLimit = 10 * time.Second

func hostEngineState() hostState {
	// The lookup first: it makes the engine load every plugin socket then
	// in the host's plugin directory (other processes' included), so the
	// list after it is the one to compare with.
	var st hostState
	st.fast = hostLookupFast()
	st.drivers, st.up = hostVolumeDrivers()
	return st
}

// runDrivers lists the volume driver names the run's test daemons took
// (the lock files of its slots).
func runDrivers(dir string) []string {
	locks, _ := filepath.Glob(filepath.Join(dir, "slots", "*.lock"))
	var out []string
	for _, l := range locks {
		out = append(out, strings.TrimSuffix(filepath.Base(l), ".lock"))
	}
	return out
}

// check compares the host engine now with st. It fails when the engine
// learnt a driver name of this run (used): it then asks that dead driver
// about every volume name it does not know, 15 s each, until restarted.
// Other processes may use the host's engine meanwhile and teach it their
// own names, or let a driver it knew die: that is reported, not failed.
func (st hostState) check(used []string) error {
	if !st.up {
		return nil // no host engine: nothing to leave as found
	}
	now, up := hostVolumeDrivers()
	if !up {
		return errors.New("it no longer answers")
	}
	var ours, others []string
	for _, d := range now {
		switch {
		case slices.Contains(st.drivers, d):
		case slices.Contains(used, d):
			ours = append(ours, d)
		default:
			others = append(others, d)
		}
	}
	if len(ours) > 0 {
		return fmt.Errorf("it learnt this run's volume driver(s) %v (before the run it knew %v), and asks each about every unknown volume name until restarted",
			ours, st.drivers)
	}
	if len(others) > 0 {
		logStderr("note: the host's engine learnt the volume driver(s) %v during the run, none of them this run's: another process used it", others)
	}
	if st.fast && !hostLookupFast() {
		logStderr("note: `docker volume inspect %s` on the host's engine took over %s after the run, and not before; it knows %v, none of them this run's",
			unknownVolume, unknownLookupLimit, now)
	}
	return nil
}

// hostDocker runs the docker CLI against the host's engine: this process
// never sets DOCKER_HOST, so the user's setting (or docker's default) holds.
func hostDocker(ctx context.Context, args ...string) ([]byte, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// hostVolumeDrivers lists the volume drivers the host's engine knows, the
// legacy plugins it has seen included; false when it does not answer.
func hostVolumeDrivers() ([]string, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := hostDocker(ctx, "info", "--format", "{{range .Plugins.Volume}}{{.}} {{end}}")
	if err != nil {
		return nil, false
	}
	d := strings.Fields(string(out))
	slices.Sort(d)
	return d, true
}

// hostLookupFast reports whether the host's engine answers about an unknown
// volume name within unknownLookupLimit.
func hostLookupFast() bool {
	ctx, cancel := context.WithTimeout(context.Background(), unknownLookupLimit)
	defer cancel()
	out, err := hostDocker(ctx, "volume", "inspect", unknownVolume)
	return ctx.Err() == nil && err != nil && bytes.Contains(bytes.ToLower(out), []byte("no such volume"))
}

// result is what a command printed and how it ended.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

// runCmd runs name with args, stdin and extra environment.
func runCmd(t testing.TB, env []string, stdin string, name string, args ...string) result {
	t.Helper()
	return runWith(t, env, stdin, nil, name, args...)
}

// runCmdAttr runs name with process attributes (another uid).
func runCmdAttr(t testing.TB, attr *syscall.SysProcAttr, name string, args ...string) result {
	t.Helper()
	return runWith(t, nil, "", attr, name, args...)
}

func runWith(t testing.TB, env []string, stdin string, attr *syscall.SysProcAttr, name string, args ...string) result {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = attr
	cmd.Env = append(os.Environ(), env...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
		} else {
			t.Fatalf("run %s %v: %v", name, args, err)
		}
	}
	return r
}

// docker runs the docker CLI against the shared engine.
func docker(t testing.TB, args ...string) result {
	t.Helper()
	return runCmd(t, nil, "", "docker", args...)
}

// mustDocker runs docker and fails the test unless it succeeds.
func mustDocker(t testing.TB, args ...string) string {
	t.Helper()
	r := docker(t, args...)
	if r.code != 0 {
		t.Fatalf("docker %s: %s", strings.Join(args, " "), r)
	}
	return strings.TrimSpace(r.stdout)
}
