package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// engine is a private dockerd: the one the whole suite runs against (see
// TestMain), or one more that a test starts so it can kill and restart an
// engine without touching the one every other test shares.
type engine struct {
	t    *testing.T // nil for the suite's engine
	dir  string
	host string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	logs io.Writer
	buf  *bytes.Buffer // logs, when they are kept in memory
}

// newEngine prepares a dockerd whose data root, exec root, pidfile and
// socket are all under dir, and which logs to logs (nil: kept in memory).
func newEngine(dir string, logs io.Writer) (*engine, error) {
	e := &engine{dir: dir, host: "unix://" + filepath.Join(dir, "docker.sock"), logs: logs}
	if logs == nil {
		e.buf = &bytes.Buffer{}
		e.logs = e.buf
	}
	// An empty config file keeps the host's daemon.json (which names the
	// host engine's data root) out of this engine.
	if err := os.WriteFile(filepath.Join(dir, "daemon.json"), []byte("{}"), 0o644); err != nil {
		return nil, err
	}
	return e, nil
}

// startEngine starts one more private dockerd for a test and loads the test
// image into it from the suite's engine. Its cleanup stops it and removes
// everything it left, mounts included.
func startEngine(t *testing.T) *engine {
	t.Helper()
	dir, err := os.MkdirTemp("", "de-")
	if err != nil {
		t.Fatal(err)
	}
	e, err := newEngine(dir, nil)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	e.t = t
	t.Cleanup(e.cleanup)
	e.start()
	if err := e.loadImage(); err != nil {
		t.Fatal(err)
	}
	return e
}

// loadImage copies the test image from the suite's engine ($DOCKER_HOST).
func (e *engine) loadImage() error {
	save := exec.Command("docker", "save", image)
	load := exec.Command("docker", "-H", e.host, "load", "-q")
	pipe, err := save.StdoutPipe()
	if err != nil {
		return err
	}
	load.Stdin = pipe
	var out bytes.Buffer
	load.Stdout, load.Stderr = &out, &out
	if err := save.Start(); err != nil {
		return err
	}
	if err := load.Run(); err != nil {
		save.Process.Kill()
		save.Wait()
		return fmt.Errorf("load %s into the private engine: %v\n%s", image, err, out.String())
	}
	if err := save.Wait(); err != nil {
		return fmt.Errorf("docker save %s: %v", image, err)
	}
	return nil
}

func (e *engine) args() []string {
	return []string{
		"--data-root", filepath.Join(e.dir, "root"),
		"--exec-root", filepath.Join(e.dir, "exec"),
		"--pidfile", filepath.Join(e.dir, "pid"),
		"--config-file", filepath.Join(e.dir, "daemon.json"),
		"-H", e.host,
		"--bridge=none", "--iptables=false", "--ip6tables=false", "--storage-driver", "vfs",
	}
}

// start runs dockerd and waits until it answers; a test's engine fails the
// test when it does not.
func (e *engine) start() {
	e.t.Helper()
	if err := e.boot(); err != nil {
		e.t.Fatal(err)
	}
}

// boot runs dockerd and waits until it answers.
func (e *engine) boot() error {
	e.mu.Lock()
	cmd := exec.Command("dockerd", e.args()...)
	cmd.Stdout = &lockedWriter{mu: &e.mu, w: e.logs}
	cmd.Stderr = &lockedWriter{mu: &e.mu, w: e.logs}
	// A killed test process takes its engines with it; what they leave
	// (shims, containers, files) the next run sweeps (see sweepRuns).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		e.mu.Unlock()
		return err
	}
	done := make(chan struct{})
	e.cmd, e.done = cmd, done
	e.mu.Unlock()
	go func() { cmd.Wait(); close(done) }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("private dockerd exited at start:\n%s", e.log())
		default:
		}
		if exec.Command("docker", "-H", e.host, "version", "--format", "{{.Server.Version}}").Run() == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("private dockerd did not answer within 60s:\n%s", e.log())
}

// signal sends sig to dockerd and waits for it to exit, killing it if it
// takes longer than wait.
func (e *engine) signal(sig syscall.Signal, wait time.Duration) {
	e.mu.Lock()
	cmd, done := e.cmd, e.done
	e.cmd = nil
	e.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(wait):
		cmd.Process.Kill()
		<-done
	}
}

// crash SIGKILLs dockerd, as a crash would, and waits for its containerd
// to follow it (parent-death signal).
func (e *engine) crash() {
	e.t.Helper()
	pidfile := filepath.Join(e.dir, "exec", "containerd", "containerd.pid")
	b, _ := os.ReadFile(pidfile)
	e.signal(syscall.SIGKILL, 10*time.Second)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return
	}
	waitFor(e.t, 20*time.Second, "the private engine's containerd to exit", func() bool {
		st := procState(pid)
		return st == "" || st == "Z"
	})
	// This host's init reaps orphans lazily, and dockerd 20.10 takes a
	// zombie containerd for a live one and then waits on its dead socket
	// until it gives up starting.
	if procState(pid) == "Z" {
		os.Remove(pidfile)
	}
}

// procState returns the state letter of a process, "" when it is gone.
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// The command name in parentheses may hold spaces; the state follows it.
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return string(b[i+2])
	}
	return ""
}

// log is what dockerd logged, when it logs to memory.
func (e *engine) log() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.buf == nil {
		return "(logged to a file)"
	}
	return e.buf.String()
}

// docker runs the docker CLI against this engine.
func (e *engine) docker(args ...string) result {
	e.t.Helper()
	return runCmd(e.t, nil, "", "docker", append([]string{"-H", e.host}, args...)...)
}

func (e *engine) mustDocker(args ...string) string {
	e.t.Helper()
	r := e.docker(args...)
	if r.code != 0 {
		e.t.Fatalf("docker -H %s %s: %s", e.host, strings.Join(args, " "), r)
	}
	return strings.TrimSpace(r.stdout)
}

// removeContainers removes every container of this engine; it must run
// while secretd still serves the Unmounts.
func (e *engine) removeContainers() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, _ := exec.CommandContext(ctx, "docker", "-H", e.host, "ps", "-aq").Output()
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		exec.CommandContext(ctx, "docker", append([]string{"-H", e.host, "rm", "-f", "-v"}, ids...)...).Run()
	}
}

// cleanup is a test engine's cleanup (see teardown).
func (e *engine) cleanup() {
	if err := e.teardown(e.t.Logf); err != nil {
		e.t.Error(err)
	}
	if e.t.Failed() {
		var keep []string
		for _, l := range strings.Split(e.log(), "\n") {
			if !strings.Contains(l, "[core]") && !strings.Contains(l, "plugin") {
				keep = append(keep, l)
			}
		}
		e.t.Logf("private dockerd log (gRPC and plugin loading left out):\n%s", strings.Join(keep, "\n"))
	}
}

// teardown removes the engine's containers, stops it, kills whatever it
// left running, unmounts and removes its directory.
func (e *engine) teardown(logf func(string, ...any)) error {
	e.removeContainers()
	e.signal(syscall.SIGTERM, 20*time.Second)
	return removeTree(e.dir, logf)
}

// removeTree kills every process that names dir in its command line (a
// dockerd, its containerd and shims, a secretd daemon) with the processes
// under it, unmounts everything below dir and removes it.
func removeTree(dir string, logf func(string, ...any)) error {
	// dockerd's containerd normally dies with it (SIGTERM: stopped;
	// SIGKILL: parent-death signal). Shims outlive a dockerd that could not
	// stop its containers; they and the containers under them are found by
	// the directory in their command line.
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cl, err := os.ReadFile(p)
		if err != nil || !names(cl, dir) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if pid == os.Getpid() || pid <= 1 {
			continue
		}
		for _, c := range children(pid) {
			syscall.Kill(c, syscall.SIGKILL)
		}
		syscall.Kill(pid, syscall.SIGKILL)
		logf("killed process %d, left running under %s: %s", pid, dir, bytes.ReplaceAll(cl, []byte{0}, []byte{' '}))
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	var under []string
	for _, line := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(line); len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			under = append(under, f[4])
		}
	}
	slices.Sort(under)
	for i := len(under) - 1; i >= 0; i-- {
		unix.Unmount(under[i], unix.MNT_DETACH)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove the private engine's directory: %w", err)
	}
	return nil
}

// TestEngineRestart: when the engine dies and comes back, secretd notices,
// resyncs, wipes the mounts of containers that did not survive, and keeps
// serving new containers.
func TestEngineRestart(t *testing.T) {
	t.Parallel()
	e := startEngine(t)
	// A short grace keeps the test short; what matters is that a mount the
	// grace protected is looked at again once it ends.
	const grace = 10 * time.Second
	d := startTestDaemon(t, "--docker-host", e.host, "--mount-grace", grace.String())
	t.Cleanup(e.removeContainers)
	d.mustCLI("engine-value", "secret", "create", "s", "-")

	name := d.ctrName("before")
	run := func(name string) string {
		return e.mustDocker(d.runArgs("s", []string{"-d", "--name", name}, sleeper)...)
	}
	run(name)
	if got := e.mustDocker("exec", name, "cat", "/run/secrets/s"); got != "engine-value" {
		t.Fatalf("container on the private engine reads %q", got)
	}
	before := d.status(t)
	if before.EngineError != "" {
		t.Fatalf("secretd reports an engine error before the restart: %s", before.EngineError)
	}

	e.crash()
	e.start()
	var st = before
	waitFor(t, 30*time.Second, "secretd to resync with the restarted engine", func() bool {
		st = d.status(t)
		return st.Resyncs > before.Resyncs && st.EngineError == ""
	})

	// Whatever survived the engine's death, each remaining mount must be
	// the /run/secrets of a running container: compare devices, not what
	// secretd or dockerd claim. dockerd does not send the Unmounts of the
	// containers that died with it; secretd may keep a young mount through
	// its grace period (a start may be in progress), but not beyond.
	running := map[string]string{} // device -> container
	for _, id := range strings.Fields(e.mustDocker("ps", "-q")) {
		pid := e.mustDocker("inspect", "-f", "{{.State.Pid}}", id)
		if dev := mountDev(t, pid, "/run/secrets"); dev != "" {
			running[dev] = id
		}
	}
	stray := func() []string {
		var out []string
		for _, m := range d.mounts() {
			if _, ok := running[mountDev(t, "self", m)]; !ok {
				out = append(out, m)
			}
		}
		return out
	}
	deadline := time.Now().Add(grace + 10*time.Second)
	for len(stray()) > 0 && time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
	}
	if left := stray(); len(left) > 0 {
		t.Errorf("%s after the engine restart, secretd still holds mounts no running container uses: %v "+
			"(container %s is %s; the resync kept its mount as a start in progress and never checked it again)",
			grace+10*time.Second, left, name, e.mustDocker("inspect", "-f", "{{.State.Status}}", name))
	}
	if state := e.mustDocker("inspect", "-f", "{{.State.Status}}", name); state == "running" {
		// It survived: it must still read its secret.
		if got := e.docker("exec", name, "cat", "/run/secrets/s"); got.stdout != "engine-value" {
			t.Errorf("the container that survived the engine restart reads %q (%s)", got.stdout, got.stderr)
		}
	}

	after := d.ctrName("after")
	run(after)
	if got := e.mustDocker("exec", after, "cat", "/run/secrets/s"); got != "engine-value" {
		t.Errorf("a container started after the engine restart reads %q", got)
	}
	mount := d.taskMount(t, after)
	if dev := secretsDev(t, []string{"-H", e.host}, after); dev == "" || dev != mountDev(t, "self", mount) {
		t.Errorf("the new container's /run/secrets (device %q) is not secretd's mount %s", dev, mount)
	}
	e.mustDocker("stop", after)
	d.waitGone(t, mount, "the new container's secrets")
}

// names reports whether a command line (NUL-separated) holds dir or a path
// under it: /tmp/x/1 does not name /tmp/x/12.
func names(cmdline []byte, dir string) bool {
	for rest := cmdline; ; {
		i := bytes.Index(rest, []byte(dir))
		if i < 0 {
			return false
		}
		rest = rest[i+len(dir):]
		if len(rest) == 0 || rest[0] == '/' || rest[0] == 0 {
			return true
		}
	}
}

// children returns the pids whose parent is pid.
func children(pid int) []int {
	var out []int
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			c, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			out = append(out, c)
		}
	}
	return out
}
