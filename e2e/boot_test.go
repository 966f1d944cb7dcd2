package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestEngineBootRestartsContainers: dockerd restarts its restart-policy
// containers at boot before it answers API calls, and each start waits on
// secretd's Mount. secretd must not wait on the engine in turn: the
// containers come back, with their secrets, in seconds.
func TestEngineBootRestartsContainers(t *testing.T) {
	e := startEngine(t)
	d := newDaemon(t, "--docker-host", e.host)
	d.start()
	t.Cleanup(e.removeContainers)
	d.mustCLI("boot-value", "secret", "create", "s", "-")
	name := "boot-" + d.driver
	e.mustDocker(d.runArgs("s", []string{"-d", "--restart", "always", "--name", name}, "cat /run/secrets/s; echo; exec sleep 600")...)
	waitFor(t, 20*time.Second, "the container to run", func() bool {
		return e.mustDocker("inspect", "-f", "{{.State.Running}}", name) == "true"
	})

	e.signal(syscall.SIGTERM, 60*time.Second)
	start := time.Now()
	e.start()
	waitFor(t, 60*time.Second, "dockerd to restart the container", func() bool {
		r := e.docker("inspect", "-f", "{{.State.Running}} {{.RestartCount}}", name)
		return r.code == 0 && strings.HasPrefix(strings.TrimSpace(r.stdout), "true")
	})
	t.Logf("dockerd answered and had restarted the container %v after it started", time.Since(start))
	if got := e.mustDocker("exec", name, "cat", "/run/secrets/s"); got != "boot-value" {
		t.Fatalf("after the engine restart the container reads %q", got)
	}
	if logs := e.mustDocker("logs", name); strings.Count(logs, "boot-value") != 2 {
		t.Errorf("the container did not read its secret at both starts: %q", logs)
	}
}
