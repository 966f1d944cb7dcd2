package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/secretd/secretd/secretdtest"
)

// podmanSetup starts Debian's Podman 4.3 with a configuration of the
// test's own (see secretdtest.Podman) and a secretd that follows it
// through its Docker-compatible API, with the driver named in Podman's
// containers.conf. The test image is the suite's, imported into Podman.
func podmanSetup(t *testing.T) (*secretdtest.Podman, *daemon) {
	t.Helper()
	p := secretdtest.NewPodman(t)
	d := newDaemon(t, "--docker-host", p.Host)
	p.Start(image, map[string]string{d.driver: filepath.Join("/run/docker/plugins", d.driver+".sock")})
	d.start()
	return p, d
}

// podmanRun starts a container of the test image on Podman, detached,
// with no network and never pulling.
func podmanRun(p *secretdtest.Podman, name string, args ...string) {
	a := append([]string{"run", "-d", "--name", name, "--network", "none", "--pull", "never"}, args...)
	p.Must(append(a, image, "sh", "-c", `trap 'echo hup >> /tmp/hups' HUP; while :; do sleep 0.1; done`)...)
}

// psRows is `secretd ps` as NAME@MOUNT lines, sorted.
func psRows(d *daemon) []string {
	out := d.mustCLI("", "ps", "--format", "{{.Name}}@{{.Mount}}")
	rows := strings.Fields(out)
	slices.Sort(rows)
	return slices.Compact(rows)
}

// TestPodman: Podman 4.3 as the engine. A named volume declared with -o
// secrets= and -o on-update= delivers its secrets; one without its
// on-update is refused at once. Two containers share the volume's one
// mount, which lives while either runs and is wiped after the last stops;
// a rotation reaches both and signals each, as the volume asks, and
// restarts a container whose volume asks for that; `secret rm` is refused
// naming them; a Docker container on the same driver is refused; secretd
// follows a restart of Podman's API service; a restart of secretd adopts
// the mount without rewriting it; two volumes mount at once; ps and the
// audit trail name the containers; no secret value leaks into the log,
// the trail or `podman inspect`.
func TestPodman(t *testing.T) {
	t.Parallel()
	p, d := podmanSetup(t)
	dbValue, keyValue, rotated := canary(t), canary(t), canary(t)
	d.mustCLI(dbValue, "secret", "create", "db", "-")
	d.mustCLI(keyValue, "secret", "create", "api", "-")
	p.Must("volume", "create", "--driver", d.driver, "-o", "secrets=db;source=api,target=conf/api.key,mode=0400", "-o", "on-update=signal:SIGHUP", "web")
	p.Must("volume", "create", "--driver", d.driver, "-o", "secrets=api", "-o", "on-update=restart", "other")

	// A volume without its on-update is refused at once: during a Mount,
	// Podman's API cannot say which container it is for.
	p.Must("volume", "create", "--driver", d.driver, "-o", "secrets=db", "bare")
	start := time.Now()
	_, stderr, code := p.Run("run", "--rm", "--network", "none", "--pull", "never", "-v", "bare:/run/secrets", image, "true")
	if code == 0 || !strings.Contains(stderr, "volume bare has no on-update option, and Podman cannot say during a Mount which container uses it") {
		t.Errorf("a volume without on-update: exit %d: %s", code, stderr)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the refusal took %s", d)
	}

	// A named volume: the container reads its declaration.
	podmanRun(p, "c1", "-v", "web:/run/secrets")
	if got := p.Must("exec", "c1", "cat", "/run/secrets/db"); got != dbValue {
		t.Fatalf("c1 reads db %q", got)
	}
	if got := p.Must("exec", "c1", "stat", "-c", "%a", "/run/secrets/conf/api.key"); got != "400" {
		t.Errorf("api.key has mode %s, want 400", got)
	}
	mounts := d.mounts()
	if len(mounts) != 1 {
		t.Fatalf("mounts with c1 running: %v", mounts)
	}
	mount := mounts[0]

	// A second container on the volume shares the mount: Podman mounts a
	// volume once, and secretd names both containers.
	podmanRun(p, "c2", "-v", "web:/run/secrets")
	if got := p.Must("exec", "c2", "cat", "/run/secrets/db"); got != dbValue {
		t.Fatalf("c2 reads db %q", got)
	}
	// Another volume mounts at the same time, under Podman's same mount ID.
	podmanRun(p, "c3", "-v", "other:/run/secrets")
	if got := p.Must("exec", "c3", "cat", "/run/secrets/api"); got != keyValue {
		t.Fatalf("c3 reads api %q", got)
	}
	waitFor(t, 10*time.Second, "ps to name c1, c2 and c3", func() bool {
		rows := psRows(d)
		return len(rows) == 3 && rows[0] == "c1@"+mount && rows[1] == "c2@"+mount && strings.HasPrefix(rows[2], "c3@") && rows[2] != "c3@"+mount
	})

	// The in-use refusal names the containers.
	r := d.cli("", "secret", "rm", "db")
	if r.code == 0 || !strings.Contains(r.stderr, "c1") || !strings.Contains(r.stderr, "c2") || strings.Contains(r.stderr, "starting") {
		t.Errorf("secret rm db while in use: %s", r)
	}

	// The suite's dockerd finds the same driver socket, but this secretd
	// follows Podman and would wipe a Docker container's mount at its next
	// resync: the Mount fails closed, saying what to run instead.
	mustDocker(t, "volume", "create", "-d", d.driver, "-o", "secrets=db", "dockervol")
	t.Cleanup(func() { docker(t, "volume", "rm", "-f", "dockervol") })
	r = docker(t, "run", "--rm", "--network", "none", "--pull", "never", "-v", "dockervol:/run/secrets", image, "true")
	if r.code == 0 || !strings.Contains(r.stderr, "secretd follows Podman at "+p.Host) {
		t.Errorf("a Docker container on the Podman secretd's volume: %s", r)
	}

	// A rotation reaches both containers through the one mount, and each
	// gets SIGHUP, as their volume's on-update asks.
	d.mustCLI(rotated, "secret", "update", "db", "-")
	for _, c := range []string{"c1", "c2"} {
		if got := p.Must("exec", c, "cat", "/run/secrets/db"); got != rotated {
			t.Errorf("%s reads db %q after the rotation", c, got)
		}
	}
	for _, c := range []string{"c1", "c2"} {
		waitFor(t, 10*time.Second, c+" to get SIGHUP", func() bool {
			out, _, _ := p.Run("exec", c, "cat", "/tmp/hups")
			return strings.TrimSpace(out) == "hup"
		})
	}
	if out, _, _ := p.Run("exec", "c3", "cat", "/tmp/hups"); out != "" {
		t.Errorf("c3, on a volume the rotation did not touch, got a signal: %q", out)
	}

	// A container whose volume's on-update is restart is restarted at a
	// rotation, through Podman's API; it remounts its volume, alone on it,
	// with the new value.
	started := p.Must("inspect", "-f", "{{.State.StartedAt}}", "c3")
	d.mustCLI(rotated, "secret", "update", "api", "-")
	waitFor(t, 20*time.Second, "c3 to be restarted", func() bool {
		out, _, _ := p.Run("inspect", "-f", "{{.State.StartedAt}} {{.State.Status}}", "c3")
		return !strings.HasPrefix(out, started) && strings.Contains(out, "running")
	})
	if got := p.Must("exec", "c3", "cat", "/run/secrets/api"); got != rotated {
		t.Errorf("c3 reads api %q after its restart", got)
	}

	// Podman's API service restarts (as podman.service does when idle):
	// secretd reconnects and resyncs.
	p.StopService()
	p.StartService()
	waitFor(t, 20*time.Second, "secretd to follow Podman again", func() bool {
		out := d.mustCLI("", "status", "--format", "{{.EngineError}}")
		return out == "" && strings.Contains(d.log(), "engine event stream broke")
	})

	// c1 stops: the mount stays for c2.
	p.Must("stop", "-t", "0", "c1")
	if !slices.Contains(d.mounts(), mount) {
		t.Fatalf("the mount went with c1, while c2 runs: %v", d.mounts())
	}
	if got := p.Must("exec", "c2", "cat", "/run/secrets/db"); got != rotated {
		t.Errorf("c2 reads db %q after c1 stopped", got)
	}

	// A restart of secretd adopts the mount, without rewriting it, and the
	// resync names c2 alone.
	data, err := os.Readlink(filepath.Join(mount, "..data"))
	if err != nil {
		t.Fatal(err)
	}
	d.stop()
	d.start()
	waitFor(t, 10*time.Second, "ps to name c2 and c3 after the restart", func() bool {
		rows := psRows(d)
		return len(rows) == 2 && rows[0] == "c2@"+mount && strings.HasPrefix(rows[1], "c3@")
	})
	if now, err := os.Readlink(filepath.Join(mount, "..data")); err != nil || now != data {
		t.Errorf("the adopted mount was rewritten: ..data is %s, was %s (%v)", now, data, err)
	}
	if got := p.Must("exec", "c2", "cat", "/run/secrets/db"); got != rotated {
		t.Errorf("c2 reads db %q after secretd restarted", got)
	}

	// The last container of the volume stops: the mount is wiped.
	p.Must("stop", "-t", "0", "c2")
	if slices.Contains(d.mounts(), mount) {
		t.Errorf("the mount outlived the last container of its volume: %v", d.mounts())
	}
	if _, err := os.Lstat(mount); !os.IsNotExist(err) {
		t.Errorf("the wiped mount's directory is still there: %v", err)
	}
	p.Must("rm", "-f", "-t", "0", "c3")
	if got := d.mounts(); len(got) != 0 {
		t.Errorf("mounts after every container stopped: %v", got)
	}

	// The trail names the containers, and no value is anywhere.
	var trail []string
	for _, e := range auditEvents(t, filepath.Join(d.dataRoot, "audit.log")) {
		if ev, _ := e["event"].(string); strings.HasPrefix(ev, "container.") {
			c, _ := e["container"].(string)
			trail = append(trail, ev+":"+c)
		}
	}
	for _, want := range []string{"container.mount:c1", "container.mount:c2", "container.mount:c3", "container.rotate:c1", "container.rotate:c2",
		"container.wipe:c2", "container.wipe:c3"} {
		if !slices.Contains(trail, want) {
			t.Errorf("audit trail %v lacks %s", trail, want)
		}
	}
	audit, _ := os.ReadFile(filepath.Join(d.dataRoot, "audit.log"))
	inspect := p.Must("inspect", "c1", "c2")
	vols := p.Must("volume", "inspect", "web", "other")
	for _, v := range []string{dbValue, keyValue, rotated} {
		for where, text := range map[string]string{"the daemon's log": d.log(), "the audit trail": string(audit), "podman inspect": inspect, "podman volume inspect": vols} {
			if strings.Contains(text, v) {
				t.Errorf("a secret value is in %s", where)
			}
		}
	}
}

// TestMakeInstallPodman: `make install ENGINE=podman` adds the unit's
// drop-in that follows Podman's API socket, after podman.socket, with
// ExecStart at the installed binary; `make uninstall` removes it and the
// directory it made; any other ENGINE is refused and installs nothing.
func TestMakeInstallPodman(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/usr/bin/make"); err != nil {
		t.Skip("make not installed")
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(filepath.Join(root, "usr/local/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	before := tree(t, root)
	args := []string{"DESTDIR=" + root, "MANSRC=" + filepath.Join(dir, "man"), "BINDIR=/opt/secretd/bin"}
	deployMake(t, dir, append(args, "ENGINE=podman", "install")...)
	b, err := os.ReadFile(filepath.Join(root, "usr/local/lib/systemd/system/secretd.service.d/podman.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nWants=podman.socket\n", "\nAfter=podman.socket\n", "\nBefore=podman-restart.service\n",
		"\nExecStart=\nExecStart=/opt/secretd/bin/secretd daemon --docker-host unix:///run/podman/podman.sock\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the drop-in lacks %q:\n%s", want, b)
		}
	}
	deployMake(t, dir, append(args, "uninstall")...)
	if after := tree(t, root); !slices.Equal(after, before) {
		t.Errorf("after install and uninstall the tree is\n%s\nwant as before\n%s", strings.Join(after, "\n"), strings.Join(before, "\n"))
	}

	cmd := exec.Command("make", append([]string{"-C", deployRoot(t), "BIN=" + filepath.Join(dir, "bin", "secretd"), "ENGINE=podmn", "install"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "ENGINE=podmn: use ENGINE=docker (the default) or ENGINE=podman") {
		t.Errorf("make install ENGINE=podmn: %v\n%s", err, out)
	}
	if after := tree(t, root); !slices.Equal(after, before) {
		t.Errorf("a refused install changed the tree:\n%s", strings.Join(after, "\n"))
	}
}
