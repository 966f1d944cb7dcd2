package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBootMountsBoundVolumes: a private dockerd boots with restart-policy
// containers whose volumes are already bound. It restarts them before it
// answers API calls, and their Mounts need no engine: they start with
// their secrets and no engine lookup.
func TestBootMountsBoundVolumes(t *testing.T) {
	t.Parallel()
	e := startEngine(t)
	d := startTestDaemon(t, "--docker-host", e.host)
	t.Cleanup(e.removeContainers)
	v := d.secrets(t, "boot_lbl", "boot_opt")
	lbl, opt := d.ctrName("bootlabel"), d.ctrName("bootopt")
	e.mustDocker(d.runArgs("boot_lbl", []string{"-d", "--restart", "always", "--name", lbl}, sleeper)...)
	vol := d.ctrName("bootvol")
	e.mustDocker("volume", "create", "-d", d.driver, "-o", "secrets=boot_opt", vol)
	e.mustDocker("run", "-d", "--restart", "always", "--network", "none", "--label", d.label(), "--name", opt, "-v", vol+":/run/secrets", image, "sh", "-c", sleeper)
	lblVol := e.mustDocker("inspect", "-f", `{{range .Mounts}}{{.Name}}{{end}}`, lbl)
	logBefore := len(d.log())

	e.signal(syscall.SIGTERM, 30*time.Second)
	e.start()
	waitFor(t, 60*time.Second, "the restart-policy containers to run again", func() bool {
		out := e.docker("ps", "--format", "{{.Names}}").stdout
		return slices.Contains(strings.Fields(out), lbl) && slices.Contains(strings.Fields(out), opt)
	})
	for c, name := range map[string]string{lbl: "boot_lbl", opt: "boot_opt"} {
		if got := e.mustDocker("exec", c, "sh", "-c", "ls /run/secrets; cat /run/secrets/"+name); got != name+"\n"+v[name] {
			t.Errorf("%s after the engine's boot reads %q", c, got)
		}
	}
	after := mountLookups(d.log()[logBefore:])
	for _, vname := range []string{lblVol, vol} {
		if l := after[vname]; len(l) == 0 || slices.Contains(l, true) {
			t.Errorf("Mounts of volume %s at the engine's boot: engine lookups %v, want at least one Mount and no lookup", vname, l)
		}
	}
}

// TestHungEngineDoesNotBlockWrites: with the engine stopped (SIGSTOP),
// `secret rm` cannot tell whether the secret is in use: it fails with a
// clear error once its deadline passes, and other writes go on meanwhile,
// because the engine is asked before the store's transaction, not inside.
func TestHungEngineDoesNotBlockWrites(t *testing.T) {
	t.Parallel()
	e := startEngine(t)
	d := startTestDaemon(t, "--docker-host", e.host)
	d.secrets(t, "hung_a")
	b, err := os.ReadFile(filepath.Join(e.dir, "pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	cont := func() { syscall.Kill(pid, syscall.SIGCONT) }
	t.Cleanup(cont)

	// Bounded only so that a hang fails the test instead of the suite.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rm := exec.CommandContext(ctx, binary, "secret", "rm", "hung_a")
	rm.Env = append(rm.Environ(), "SECRETD_HOST=unix://"+d.sock)
	var rmOut strings.Builder
	rm.Stdout, rm.Stderr = &rmOut, &rmOut
	if err := rm.Start(); err != nil {
		t.Fatal(err)
	}
	rmDone := make(chan error, 1)
	go func() { rmDone <- rm.Wait() }()

	cr := exec.CommandContext(ctx, binary, "secret", "create", "hung_b", "-")
	cr.Env = append(cr.Environ(), "SECRETD_HOST=unix://"+d.sock)
	cr.Stdin = strings.NewReader(canary(t))
	if out, err := cr.CombinedOutput(); err != nil {
		t.Errorf("secret create while another secret's rm waits on the engine: %v: %s", err, out)
	}
	select {
	case <-rmDone:
		t.Log("rm returned before the create: the overlap was not exercised")
	default:
	}
	err = <-rmDone
	if err == nil || !strings.Contains(rmOut.String(), "Docker Engine did not answer") {
		t.Errorf("secret rm with the engine stopped: %v: %s", err, rmOut.String())
	}
	if ctx.Err() != nil {
		t.Error("secret rm or create hung with the engine stopped")
	}
	cont()
	d.mustCLI("", "secret", "inspect", "hung_a")
}
