package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/secretd/secretd/api/client"
	"github.com/secretd/secretd/secretdtest"
)

// daemon is one secretd started by a test on its own socket, data root,
// mount root and driver name, next to any other secretd on the host.
type daemon struct {
	t         testing.TB
	dir       string
	dataRoot  string
	mountRoot string
	sock      string
	driver    string
	extra     []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	logs *bytes.Buffer
	out  *bytes.Buffer
	done chan struct{}
}

// newDaemon prepares (but does not start) a daemon. Paths are short:
// unix socket paths are capped at 108 bytes.
func newDaemon(t testing.TB, extra ...string) *daemon {
	t.Helper()
	dir, err := os.MkdirTemp("", "sd-")
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{
		t: t, dir: dir,
		dataRoot:  filepath.Join(dir, "data"),
		mountRoot: filepath.Join(dir, "mounts"),
		sock:      filepath.Join(dir, "api.sock"),
		driver:    secretdtest.DriverName(t, "secretd-e2e"),
		extra:     extra,
		logs:      &bytes.Buffer{},
		out:       &bytes.Buffer{},
	}
	t.Cleanup(func() {
		// Containers go first, while the driver can still answer their
		// Unmounts: with it stopped, dockerd waits on a dead plugin.
		if d.pid() == 0 {
			d.start()
		}
		d.cleanupContainers()
		d.stop()
		if t.Failed() {
			t.Logf("secretd log:\n%s", d.log())
		}
		// Nothing a test leaves mounted may survive it.
		if mi, _ := os.ReadFile("/proc/self/mountinfo"); bytes.Contains(mi, []byte(d.mountRoot)) {
			t.Errorf("mounts left under %s after the test", d.mountRoot)
			exec.Command("sh", "-c", "grep "+d.mountRoot+" /proc/self/mountinfo | cut -d' ' -f5 | sort -r | xargs -r umount -l").Run()
		}
		os.RemoveAll(dir)
	})
	return d
}

// startDaemon starts a fresh daemon and waits until its API answers.
func startDaemon(t testing.TB, extra ...string) *daemon {
	t.Helper()
	d := newDaemon(t, extra...)
	d.start()
	return d
}

func (d *daemon) args() []string {
	return append([]string{"daemon",
		"--data-root", d.dataRoot, "-H", "unix://" + d.sock, "--mount-root", d.mountRoot,
		"--driver-name", d.driver, "--log-level", "debug",
	}, d.extra...)
}

// start runs the daemon and waits for its API.
func (d *daemon) start() {
	d.t.Helper()
	d.mu.Lock()
	cmd := exec.Command(binary, d.args()...)
	cmd.Stdout = &lockedWriter{mu: &d.mu, w: d.out}
	cmd.Stderr = &lockedWriter{mu: &d.mu, w: d.logs}
	if err := cmd.Start(); err != nil {
		d.mu.Unlock()
		d.t.Fatal(err)
	}
	d.cmd = cmd
	done := make(chan struct{})
	d.done = done
	d.mu.Unlock()
	go func() { cmd.Wait(); close(done) }()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			d.t.Fatalf("secretd exited at start:\n%s", d.log())
		default:
		}
		if c, err := client.New("unix://"+d.sock, nil); err == nil {
			err = c.Ping(context.Background())
			c.Close()
			if err == nil {
				if _, err := os.Stat(filepath.Join("/run/docker/plugins", d.driver+".sock")); err == nil {
					return
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.t.Fatalf("secretd did not answer within 15s:\n%s", d.log())
}

// stop sends SIGTERM and waits.
func (d *daemon) stop() { d.signal(syscall.SIGTERM) }

// kill sends SIGKILL: no cleanup runs, as in a crash.
func (d *daemon) kill() { d.signal(syscall.SIGKILL) }

func (d *daemon) signal(sig syscall.Signal) {
	d.mu.Lock()
	cmd, done := d.cmd, d.done
	d.cmd = nil
	d.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

func (d *daemon) pid() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

func (d *daemon) log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.logs.String()
}

func (d *daemon) stdout() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}

// cli runs the secretd CLI against this daemon.
func (d *daemon) cli(stdin string, args ...string) result {
	d.t.Helper()
	return runCmd(d.t, []string{"SECRETD_HOST=unix://" + d.sock}, stdin, binary, args...)
}

// mustCLI runs the CLI and fails the test unless it succeeds.
func (d *daemon) mustCLI(stdin string, args ...string) string {
	d.t.Helper()
	r := d.cli(stdin, args...)
	if r.code != 0 {
		d.t.Fatalf("secretd %s: %s", strings.Join(args, " "), r)
	}
	return strings.TrimSpace(r.stdout)
}

// dockerSecret runs the stock docker CLI with DOCKER_HOST at secretd.
func (d *daemon) dockerSecret(stdin string, args ...string) result {
	d.t.Helper()
	return runCmd(d.t, []string{"DOCKER_HOST=unix://" + d.sock}, stdin, "docker", append([]string{"secret"}, args...)...)
}

// client returns a Go API client for this daemon.
func (d *daemon) client() *client.Client {
	c, err := client.New("unix://"+d.sock, nil)
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(c.Close)
	return c
}

// label is the label every container a test starts carries, so cleanup
// removes exactly this test's containers.
func (d *daemon) label() string { return "secretd-e2e=" + d.driver }

// run starts a container on the shared engine with this daemon's driver.
// decl goes to the secretd.secrets label; extra are more docker run flags
// placed before the image; cmd is the shell command.
func (d *daemon) runArgs(decl string, extra []string, cmd string) []string {
	args := []string{"run", "--network", "none", "--label", d.label()}
	if decl != "" {
		args = append(args, "--label", "secretd.secrets="+decl,
			"--mount", "type=volume,volume-driver="+d.driver+",dst=/run/secrets")
	}
	args = append(args, extra...)
	return append(args, image, "sh", "-c", cmd)
}

// cleanupContainers removes this test's containers and volumes. Each call
// is bounded: a cleanup that hangs hides the failure it cleans up after.
func (d *daemon) cleanupContainers() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, _ := exec.CommandContext(ctx, "docker", "ps", "-aq", "--filter", "label="+d.label()).Output()
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		exec.CommandContext(ctx, "docker", append([]string{"rm", "-f", "-v"}, ids...)...).Run()
	}
	out, _ = exec.CommandContext(ctx, "docker", "volume", "ls", "-q", "--filter", "driver="+d.driver).Output()
	if vs := strings.Fields(string(out)); len(vs) > 0 {
		exec.CommandContext(ctx, "docker", append([]string{"volume", "rm", "-f"}, vs...)...).Run()
	}
	if ctx.Err() != nil {
		d.t.Errorf("cleanup of the test's containers timed out")
	}
}

// mounts lists the tmpfs mounts under this daemon's mount root.
func (d *daemon) mounts() []string {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		d.t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(mi), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], d.mountRoot+"/") {
			out = append(out, f[4])
		}
	}
	return out
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

var _ = fmt.Sprintf
