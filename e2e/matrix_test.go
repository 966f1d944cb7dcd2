package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestCopyUp: the test image has a /run/secrets directory, and a label
// volume mounted there without volume-nocopy makes dockerd mount it once
// inside the create, to copy the image's content in. Engine 20.10 lists
// the container by then: the volume binds at that Mount, and the
// container starts with its secret. Engine 29 registers the container only
// after: the create fails closed with secretd's advice, leaves no
// container and no mount, and with volume-nocopy the same run works.
func TestCopyUp(t *testing.T) {
	t.Parallel()
	onEngines(t, testCopyUp)
}

// testCopyUp is TestCopyUp on one engine of the matrix.
func testCopyUp(t *testing.T) {
	d := startTestDaemon(t)
	v := d.secrets(t, "copied")
	run := func(name, mountOpts string) result {
		return docker(t, "run", "-d", "--network", "none", "--label", d.label(), "--label", "secretd.secrets=copied", "--name", name,
			"--mount", "type=volume,volume-driver="+d.driver+",dst=/run/secrets"+mountOpts, image, "sh", "-c", sleeper)
	}
	name := d.ctrName("copyup")
	r := run(name, "")
	if engineOf(t).bindsAtCopyUp {
		if r.code != 0 {
			t.Fatalf("run without volume-nocopy: %s", r)
		}
		if got := secretsIn(t, name, "/run/secrets"); got != want(v, "copied") {
			t.Errorf("the container reads %q", got)
		}
		vol := volumeOf(t, func(args ...string) string { return mustDocker(t, args...) }, name, "/run/secrets")
		if l := mountLookups(d.log())[vol]; len(l) != 2 || !l[0] {
			t.Errorf("the volume's Mounts asked the engine %v, want two Mounts, the first (the copy inside the create) binding it", l)
		}
		return
	}
	if r.code != 125 || !strings.Contains(r.stderr, "failed to populate volume") ||
		!strings.Contains(r.stderr, "declares no secrets and no container uses it yet") || !strings.Contains(r.stderr, "mount it with volume-nocopy") {
		t.Errorf("run without volume-nocopy on an engine that mounts before it lists the container: want exit 125 with secretd's advice, got %s", r)
	}
	if ps := mustDocker(t, "ps", "-aq", "--filter", "label="+d.label()); ps != "" {
		t.Errorf("the refused create left containers: %s", ps)
	}
	if m := d.mounts(); len(m) != 0 {
		t.Errorf("mounted after the refused create: %v", m)
	}
	if ents, err := d.Leftovers(); err != nil || len(ents) != 0 {
		t.Errorf("mount root after the refused create: %v %v", ents, err)
	}
	name2 := d.ctrName("nocopy")
	if r := run(name2, ",volume-nocopy"); r.code != 0 {
		t.Fatalf("run with volume-nocopy, as the error advises: %s", r)
	}
	if got := secretsIn(t, name2, "/run/secrets"); got != want(v, "copied") {
		t.Errorf("the container mounted with volume-nocopy reads %q", got)
	}
}

// TestBootOrder: secretd starts before the engine, as the systemd unit
// orders them at boot; then the engine starts (Engine 29.7.2 refusing
// clients below API 1.44, as 29.0-29.2 do). Until it answers, secretd
// guesses no API version: `secretd status` says the engine has not told
// it. Once it answers, a label-declared container starts with its secret,
// its start and rename events reach the task table, and after the engine
// restarts the resync wipes the mount of the container that died with it.
// The old code pinned API 1.41 here, which Engine 29.0 refuses for good.
func TestBootOrder(t *testing.T) {
	t.Parallel()
	onEngines(t, testBootOrder)
}

// testBootOrder is TestBootOrder on one engine of the matrix.
func testBootOrder(t *testing.T) {
	e := newEngine(t)
	d := startTestDaemon(t, "--docker-host", e.host, "--mount-grace", "2s")
	t.Cleanup(e.removeContainers)
	d.mustCLI("boot-order-value", "secret", "create", "s", "-")
	var st = d.status(t)
	waitFor(t, 30*time.Second, "secretd to report that the engine has not told its API version", func() bool {
		st = d.status(t)
		return strings.Contains(st.EngineError, "has not told its API version yet")
	})
	if !strings.Contains(st.EngineError, e.host) {
		t.Errorf("engine error %q does not name the engine %s", st.EngineError, e.host)
	}

	e.start()
	if err := e.loadImage(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "secretd to follow the engine and resync", func() bool {
		st = d.status(t)
		return st.EngineError == "" && st.Resyncs > 0
	})
	name := d.ctrName("boot")
	e.mustDocker(d.runArgs("s", []string{"-d", "--name", name}, sleeper)...)
	if got := e.mustDocker("exec", name, "cat", "/run/secrets/s"); got != "boot-order-value" {
		t.Fatalf("the label container reads %q", got)
	}
	mount := d.taskMount(t, name)
	e.mustDocker("rename", name, name+"-renamed")
	waitFor(t, 10*time.Second, "the rename event to reach the task table", func() bool {
		return d.mustCLI("", "ps", "--format", "{{.Name}}") == name+"-renamed"
	})

	before := d.status(t).Resyncs
	e.crash()
	e.start()
	waitFor(t, 60*time.Second, "secretd to resync with the restarted engine", func() bool {
		st = d.status(t)
		return st.Resyncs > before && st.EngineError == ""
	})
	if state := e.mustDocker("inspect", "-f", "{{.State.Status}}", name+"-renamed"); state == "running" {
		t.Fatalf("the container survived its engine's crash: nothing for the resync to wipe")
	}
	d.waitGone(t, mount, "the mount of the container that died with its engine")
	if ps := d.mustCLI("", "ps", "--format", "{{.Name}}"); ps != "" {
		t.Errorf("secretd ps after the resync: %q", ps)
	}
}
