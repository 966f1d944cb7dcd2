package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secretd/secretd/secretdtest"
)

// engine is one more private dockerd for a test that kills or restarts an
// engine, without touching the suite's (see TestMain).
type engine struct {
	*secretdtest.Engine
	t    *testing.T
	dir  string
	host string
}

// startEngine starts one more private dockerd for a test, of the version
// of the test's engine of the matrix (see onEngines), and loads the test
// image into it from the suite's engine. Its cleanup stops it and removes
// everything it left, mounts included.
func startEngine(t *testing.T) *engine {
	t.Helper()
	e := newEngine(t)
	e.start()
	if err := e.loadImage(); err != nil {
		t.Fatal(err)
	}
	return e
}

// newEngine prepares a private dockerd as startEngine does, without
// starting it or loading the image.
func newEngine(t *testing.T) *engine {
	t.Helper()
	dir, err := os.MkdirTemp("", "de-")
	if err != nil {
		t.Fatal(err)
	}
	se, err := secretdtest.NewEngineOf(engineOf(t).version, dir, nil)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	e := &engine{Engine: se, t: t, dir: se.Dir, host: se.Host}
	t.Cleanup(e.cleanup)
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

// start runs dockerd and waits until it answers, or fails the test.
func (e *engine) start() {
	e.t.Helper()
	if err := e.Boot(); err != nil {
		e.t.Fatal(err)
	}
}

func (e *engine) signal(sig syscall.Signal, wait time.Duration) { e.Signal(sig, wait) }
func (e *engine) removeContainers()                             { e.RemoveContainers() }
func (e *engine) log() string                                   { return e.Log() }

// crash SIGKILLs dockerd, as a crash would, and waits for its containerd
// to follow it.
func (e *engine) crash() {
	e.t.Helper()
	if err := e.Crash(); err != nil {
		e.t.Fatal(err)
	}
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

// cleanup removes the engine and everything it left (Teardown), with its
// log when the test failed.
func (e *engine) cleanup() {
	if err := e.Teardown(e.t.Logf); err != nil {
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

// TestEngineRestart: when the engine dies and comes back, secretd notices,
// resyncs, wipes the mounts of containers that did not survive, and keeps
// serving new containers.
func TestEngineRestart(t *testing.T) {
	t.Parallel()
	onEngines(t, testEngineRestart)
}

// testEngineRestart is TestEngineRestart on one engine of the matrix.
func testEngineRestart(t *testing.T) {
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
