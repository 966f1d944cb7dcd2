package secretdtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secretd/secretd/internal/forward"
	"golang.org/x/sys/unix"
)

// runEnv names the run's directory in the test process that runs the tests
// (see TestMain).
const runEnv = "SECRETD_ISOLATED_RUN"

// Isolate runs a test binary's tests (e2e, bench) in a child process with
// a mount namespace of its own and a Docker Engine of its own. There,
// /run/docker/plugins is a directory of the run: the run's dockerd finds
// the test daemons' driver sockets in it, and the host's dockerd, which
// looks in the real one, never sees a test driver. dockerd remembers every
// legacy volume driver it has seen and asks each about every volume name
// it does not know, 15 s for each one gone; a host engine that learnt the
// tests' drivers would stay slow until restarted.
//
// The parent sweeps what killed runs left, waits for the child, removes
// what the child could not (a test timeout exits without cleanup), and
// then checks that the host's engine learnt no volume driver. Call it from
// TestMain and exit with what it returns.
func Isolate(m *testing.M, o IsolateOptions) int {
	if o.Name == "" {
		o.Name = "secretd-tests"
	}
	runName = o.Name
	if dir := os.Getenv(runEnv); dir != "" {
		return inside(m, dir, o)
	}
	return outside(o)
}

// IsolateOptions configure Isolate.
type IsolateOptions struct {
	// Name tags messages, the runs' directory and the engine's log.
	Name string
	// Module is the module directory; ./cmd/secretd is built from it.
	Module string
	// HostStorageDriver runs the run's engine on the host engine's storage
	// driver instead of vfs, so that benchmarks measure container starts
	// as the host makes them.
	HostStorageDriver bool
	// Docker29 starts Docker Engine 29.7.2 too (see Docker29), beside the
	// run's own; the run fails when its binary cannot be found.
	Docker29 bool
	// Setup runs in the child once the run's engines answer (DOCKER_HOST
	// names the run's own), before the tests: build images there.
	Setup func(*Isolated) error
}

// Isolated is what the tests of an isolated run get.
type Isolated struct {
	// Dir is the run's directory; TMPDIR is inside it.
	Dir string
	// Binary is secretd built for the run.
	Binary string
	// Engine is the run's dockerd, which DOCKER_HOST names.
	Engine *Engine
	// Docker29 is the run's Engine 29.7.2 when IsolateOptions asked for it.
	Docker29 *Engine
	// Versions are the engine versions the run found, its own first: a
	// test may start more engines of them.
	Versions []EngineVersion
}

// storageEnv carries the run engine's storage driver to the child.
const storageEnv = "SECRETD_ISOLATED_STORAGE"

// hostStorageDriver is the storage driver of the host's engine, "" when it
// does not answer.
func hostStorageDriver() string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := hostDocker(ctx, "info", "--format", "{{.Driver}}")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// runName tags the messages of this process's run.
var runName = "secretd-tests"

// outside prepares the run's directory, runs the tests in a child process
// and cleans up after it.
func outside(o IsolateOptions) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, runName+": must run as root (starts a dockerd, mounts tmpfs, serves Docker plugin sockets)")
		return 1
	}
	for _, tool := range []string{"dockerd", "docker"} {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Fprintf(os.Stderr, runName+": %s not found: the suite starts a Docker Engine of its own\n", tool)
			return 1
		}
	}
	base := filepath.Join(os.TempDir(), "secretd-"+runName)
	if err := os.MkdirAll(base, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, runName+":", err)
		return 1
	}
	name := strconv.Itoa(os.Getpid())
	lock, err := lockRun(base, name)
	if err != nil {
		fmt.Fprintln(os.Stderr, runName+":", err)
		return 1
	}
	defer func() {
		os.Remove(lock.Name())
		lock.Close()
	}()
	sweepRuns(base, name)
	dir := filepath.Join(base, name)
	RemoveTree(dir, logStderr) // a run of a process that had this pid
	// 0755 all the way down: tests run the binary as nobody too.
	if err := os.Mkdir(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, runName+":", err)
		return 1
	}

	host := hostEngineState()
	storage := ""
	if o.HostStorageDriver {
		storage = hostStorageDriver()
	}
	code := runChild(dir, storage)
	used := runDrivers(dir)
	if err := RemoveTree(dir, logStderr); err != nil {
		fmt.Fprintln(os.Stderr, runName+":", err)
		code = max(code, 1)
	}
	if err := host.check(used); err != nil {
		fmt.Fprintln(os.Stderr, runName+": FAIL: the host's Docker Engine is not as the suite found it:", err)
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
			fmt.Fprintf(os.Stderr, runName+": removing what a killed run left in %s\n", filepath.Join(base, ent.Name()))
			if err := RemoveTree(filepath.Join(base, ent.Name()), logStderr); err != nil {
				fmt.Fprintln(os.Stderr, runName+":", err)
			} else {
				os.Remove(f.Name())
			}
		}
		f.Close()
	}
}

func logStderr(format string, args ...any) {
	fmt.Fprintf(os.Stderr, runName+": "+format+"\n", args...)
}

// runChild runs this test binary again, with the same flags, in a new mount
// namespace, and returns its exit code.
func runChild(dir, storage string) int {
	cmd := exec.Command(os.Args[0], os.Args[1:]...)
	// Driver-name slots are the run's own: its drivers live in its own
	// plugin directory (see TestMain).
	cmd.Env = append(os.Environ(), runEnv+"="+dir, SlotDirEnv+"="+filepath.Join(dir, "slots"), storageEnv+"="+storage)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// Go makes every mount of the new namespace private before the exec.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	// An interrupt reaches the whole process group: the child stops its
	// tests, this process waits for it and cleans up.
	err := forward.Run(cmd, os.Interrupt, syscall.SIGTERM)
	if cmd.Process == nil {
		fmt.Fprintln(os.Stderr, runName+": start the test process:", err)
		return 1
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return ee.ExitCode()
	default:
		fmt.Fprintln(os.Stderr, runName+": the test process:", err)
		return 1
	}
}

// inside runs the tests, in the mount namespace runChild made.
func inside(m *testing.M, dir string, o IsolateOptions) int {
	bin, err := enterRun(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, runName+":", err)
		return 1
	}
	// code is the tests' exit status, which the deferred teardowns read.
	code := 1
	binary, err := Build(o.Module, bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, runName+": build secretd:", err)
		return 1
	}

	logPath := filepath.Join(filepath.Dir(dir), filepath.Base(dir)+"-dockerd.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, runName+":", err)
		return 1
	}
	defer logFile.Close()
	e, err := suiteEngine(filepath.Join(dir, "engine"), logFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, runName+":", err)
		return 1
	}
	// Parked driver slots answer the suite's engine until it is gone.
	defer CloseParked()
	defer func() {
		if err := e.Teardown(logStderr); err != nil {
			fmt.Fprintln(os.Stderr, runName+":", err)
		}
	}()
	if err := e.Boot(); err != nil {
		fmt.Fprintf(os.Stderr, runName+": start the suite's Docker Engine: %v (log: %s)\n", err, logPath)
		return 1
	}
	// Every docker and docker-compose command, Docker Go client and secretd
	// daemon of the tests follows DOCKER_HOST; what takes the engine's
	// default socket instead (the compose file and the managed plugin of
	// deploy/ bind it into secretd's container) finds this engine there.
	os.Setenv("DOCKER_HOST", e.Host)
	if err := bindDefaultSocket(strings.TrimPrefix(e.Host, "unix://")); err != nil {
		fmt.Fprintln(os.Stderr, runName+":", err)
		return 1
	}
	run := &Isolated{Dir: dir, Binary: binary, Engine: e, Versions: []EngineVersion{e.Version}}
	if o.Docker29 {
		v, err := Docker29(o.Module, bin)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", runName, err)
			return 1
		}
		e29, stop, err := bootEngine(v, filepath.Join(dir, "engine-"+v.Name), filepath.Join(filepath.Dir(dir), filepath.Base(dir)+"-dockerd-"+v.Name+".log"))
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: start the suite's Docker Engine %s: %v\n", runName, v.Name, err)
			return 1
		}
		defer stop(&code)
		run.Docker29, run.Versions = e29, append(run.Versions, v)
	}
	if o.Setup != nil {
		if err := o.Setup(run); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", runName, err)
			return 1
		}
	}
	code = m.Run()
	if code == 0 {
		os.Remove(logPath)
	} else {
		fmt.Fprintf(os.Stderr, runName+": the suite's dockerd logged to %s\n", logPath)
	}
	return code
}

// bootEngine starts one more engine of the run, of version v, in dir,
// logging to logPath. stop tears it down and keeps the log only when the
// tests failed (code != 0).
func bootEngine(v EngineVersion, dir, logPath string) (*Engine, func(code *int), error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, nil, err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		logFile.Close()
		return nil, nil, err
	}
	e, err := NewEngineOf(v, dir, logFile)
	if err != nil {
		logFile.Close()
		return nil, nil, err
	}
	stop := func(code *int) {
		if err := e.Teardown(logStderr); err != nil {
			fmt.Fprintln(os.Stderr, runName+":", err)
		}
		logFile.Close()
		if *code == 0 {
			os.Remove(logPath)
		} else {
			fmt.Fprintf(os.Stderr, "%s: the suite's dockerd %s logged to %s\n", runName, v.Name, logPath)
		}
	}
	if err := e.Boot(); err != nil {
		code := 1
		stop(&code)
		return nil, nil, fmt.Errorf("%w (log: %s)", err, logPath)
	}
	return e, stop, nil
}

// enterRun checks that the run has its own mount namespace, makes the
// run's directories under dir, gives the run its own plugin directory and
// temporary directory, and returns the directory for binaries.
func enterRun(dir string) (bin string, err error) {
	if err := sameMountNamespace(os.Getppid()); err != nil {
		return "", err
	}
	plugins := filepath.Join(dir, "plugins")
	tmp := filepath.Join(dir, "tmp")
	bin = filepath.Join(dir, "bin")
	for _, d := range []string{plugins, tmp, bin, "/run/docker/plugins"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	if err := unix.Mount(plugins, "/run/docker/plugins", "", unix.MS_BIND, ""); err != nil {
		return "", fmt.Errorf("give the run its own plugin directory: %w", err)
	}
	// Everything a test creates in temporary directories (secretd data
	// roots, mount roots, sockets, extra engines) lives in the run's
	// directory, where the next run finds it if this one is killed.
	os.Chmod(tmp, 0o1777)
	os.Setenv("TMPDIR", tmp)
	return bin, nil
}

// suiteEngine is the suite's engine, not started yet, in edir (made
// here), logging to logFile.
func suiteEngine(edir string, logFile *os.File) (*Engine, error) {
	if err := os.Mkdir(edir, 0o755); err != nil {
		return nil, err
	}
	e, err := NewEngine(edir, logFile)
	if err != nil {
		return nil, err
	}
	if os.Getenv(storageEnv) != "" {
		e.StorageDriver = os.Getenv(storageEnv)
	}
	e.Version.Name = dockerdRelease("dockerd", e.Version.Name)
	return e, nil
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
var unknownVolume = fmt.Sprintf("secretd-unknown-volume-%d", os.Getpid())

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
