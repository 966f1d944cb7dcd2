package secretdtest

import (
	"bytes"
	"cmp"
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
)

// Engine is a Docker Engine of a test's own: a dockerd whose data root,
// exec root, pidfile and socket all live under Dir, with no bridge and no
// iptables rules. A test runs containers on it instead of the host's
// engine: dockerd remembers every volume driver it has seen and asks each
// about every volume name it does not know, 15 s for each one gone, so a
// host engine that ran tests' drivers stays slow until restarted.
type Engine struct {
	// Dir holds everything of the engine.
	Dir string
	// Host is its socket as a DOCKER_HOST value.
	Host string
	// Version is the engine it runs.
	Version EngineVersion
	// StorageDriver is dockerd's --storage-driver, Version's by default;
	// empty keeps dockerd's own default.
	StorageDriver string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	logs io.Writer
	buf  *bytes.Buffer
}

// NewEngine prepares an engine of the dockerd on $PATH in dir, logging to
// logs (nil: kept in memory, see Log), without starting it.
func NewEngine(dir string, logs io.Writer) (*Engine, error) {
	return NewEngineOf(HostDockerd, dir, logs)
}

// NewEngineOf prepares an engine of version v in dir, as NewEngine does.
func NewEngineOf(v EngineVersion, dir string, logs io.Writer) (*Engine, error) {
	e := &Engine{Dir: dir, Host: "unix://" + filepath.Join(dir, "docker.sock"), Version: v, StorageDriver: v.StorageDriver, logs: logs}
	if logs == nil {
		e.buf = &bytes.Buffer{}
		e.logs = e.buf
	}
	// A config file of its own keeps the host's daemon.json (which names
	// the host engine's data root) out of this engine.
	if err := os.WriteFile(filepath.Join(dir, "daemon.json"), []byte(cmp.Or(v.Config, "{}")), 0o644); err != nil {
		return nil, err
	}
	return e, nil
}

// StartEngine starts an engine for tb, with the test image tag imported
// into it (see BusyboxImage); cleanup removes its containers, stops it and
// removes everything it left.
func StartEngine(tb testing.TB, tag string) *Engine {
	tb.Helper()
	dir, err := os.MkdirTemp("", "de-")
	if err != nil {
		tb.Fatal(err)
	}
	e, err := NewEngine(dir, nil)
	if err != nil {
		os.RemoveAll(dir)
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := e.Teardown(tb.Logf); err != nil {
			tb.Error(err)
		}
	})
	if err := e.Boot(); err != nil {
		tb.Fatal(err)
	}
	if err := BusyboxImage([]string{"docker", "-H", e.Host}, tag, nil); err != nil {
		tb.Fatal(err)
	}
	return e
}

func (e *Engine) args() []string {
	args := []string{
		"--data-root", filepath.Join(e.Dir, "root"),
		"--exec-root", filepath.Join(e.Dir, "exec"),
		"--pidfile", filepath.Join(e.Dir, "pid"),
		"--config-file", filepath.Join(e.Dir, "daemon.json"),
		"-H", e.Host,
		"--bridge=none", "--iptables=false", "--ip6tables=false",
	}
	if e.StorageDriver != "" {
		args = append(args, "--storage-driver", e.StorageDriver)
	}
	return args
}

// Boot runs dockerd and waits until it answers.
func (e *Engine) Boot() error {
	e.mu.Lock()
	cmd := exec.Command(cmp.Or(e.Version.Dockerd, "dockerd"), e.args()...)
	if len(e.Version.Env) > 0 {
		cmd.Env = append(os.Environ(), e.Version.Env...)
	}
	w := writerFunc(func(p []byte) (int, error) { e.mu.Lock(); defer e.mu.Unlock(); return e.logs.Write(p) })
	cmd.Stdout, cmd.Stderr = w, w
	// A killed test process takes its engines with it; what they leave
	// (shims, containers, files) RemoveTree finds by their directory.
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
			return fmt.Errorf("private dockerd %s exited at start:\n%s", e.Version.Name, e.Log())
		default:
		}
		if exec.Command("docker", "-H", e.Host, "version", "--format", "{{.Server.Version}}").Run() == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("private dockerd %s did not answer within 60s:\n%s", e.Version.Name, e.Log())
}

// Signal sends sig to dockerd and waits for it to exit, killing it if it
// takes longer than wait.
func (e *Engine) Signal(sig syscall.Signal, wait time.Duration) {
	e.mu.Lock()
	cmd, done := e.cmd, e.done
	e.cmd = nil
	e.mu.Unlock()
	stopProcess(cmd, done, sig, wait)
}

// Crash SIGKILLs dockerd, as a crash would, and waits up to 20 s for its
// containerd to follow it (parent-death signal), so that Boot can start the
// engine again on the same directories.
func (e *Engine) Crash() error {
	pidfile := filepath.Join(e.Dir, "exec", "containerd", "containerd.pid")
	b, _ := os.ReadFile(pidfile)
	e.Signal(syscall.SIGKILL, 10*time.Second)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return nil // no containerd of its own was running
	}
	deadline := time.Now().Add(20 * time.Second)
	for st := procState(pid); st != "" && st != "Z"; st = procState(pid) {
		if time.Now().After(deadline) {
			return fmt.Errorf("the engine's containerd (pid %d) outlived dockerd by 20s", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// This host's init reaps orphans lazily, and dockerd 20.10 takes a
	// zombie containerd for a live one and then waits on its dead socket
	// until it gives up starting.
	if procState(pid) == "Z" {
		os.Remove(pidfile)
	}
	return nil
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

// stopProcess sends sig to cmd, if it runs, and waits for done, killing
// the process if it takes longer than wait.
func stopProcess(cmd *exec.Cmd, done <-chan struct{}, sig syscall.Signal, wait time.Duration) {
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

// Log is what dockerd logged, when it logs to memory.
func (e *Engine) Log() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.buf == nil {
		return "(logged elsewhere)"
	}
	return e.buf.String()
}

// RemoveContainers removes every container of the engine; it must run
// while the volume drivers they use still answer their Unmounts.
func (e *Engine) RemoveContainers() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, _ := exec.CommandContext(ctx, "docker", "-H", e.Host, "ps", "-aq").Output()
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		exec.CommandContext(ctx, "docker", append([]string{"-H", e.Host, "rm", "-f", "-v"}, ids...)...).Run()
	}
}

// Teardown removes the engine's containers, stops it and removes Dir (see
// RemoveTree).
func (e *Engine) Teardown(logf func(string, ...any)) error {
	e.RemoveContainers()
	e.Signal(syscall.SIGTERM, 20*time.Second)
	return RemoveTree(e.Dir, logf)
}

// RemoveTree kills every process that names dir in its command line (a
// dockerd, its containerd and shims, a secretd daemon) with the processes
// under it, unmounts everything below dir and removes it. logf hears of
// each process killed.
func RemoveTree(dir string, logf func(string, ...any)) error {
	// dockerd's containerd normally dies with it (SIGTERM: stopped;
	// SIGKILL: parent-death signal). Shims outlive a dockerd that could not
	// stop its containers; they and the containers under them are found by
	// the directory in their command line.
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cl, err := os.ReadFile(p)
		if err != nil || !namesDir(cl, dir) {
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
		syscall.Unmount(under[i], syscall.MNT_DETACH)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}

// namesDir reports whether a command line (NUL-separated) holds dir or a
// path under it: /tmp/x/1 does not name /tmp/x/12.
func namesDir(cmdline []byte, dir string) bool {
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
