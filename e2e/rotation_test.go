package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// versionContent is what version v of a rotated secret holds: long enough
// that a torn read would show, and distinct per version.
func versionContent(v int) string {
	return strings.Repeat(fmt.Sprintf("version-%04d;", v), 300)
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// TestRotationNeverTorn has a container read its secret in a tight loop,
// through the visible name and as a two-file set through ..data, while at
// least 100 updates happen; every read must be one complete version. The
// one exception is a read that raced the zeroing of the version it opened:
// it sees zeros where that version was, never another version's bytes. On
// a loaded host the reader gets fewer turns, so updates go on, 20 at a
// time, until it has read often enough for the test to mean something.
func TestRotationNeverTorn(t *testing.T) {
	d := startDaemon(t)
	d.mustCLI(versionContent(0), "secret", "create", "rot", "-")
	name := "rot-" + d.driver
	// Each line: "F <sha of the file> <its NUL bytes>" or "S <sha of both
	// files of one set>".
	script := `while true; do
  cat /run/secrets/rot > /tmp/rot
  echo "F $(sha256sum /tmp/rot | cut -d' ' -f1) $(tr -cd '\000' < /tmp/rot | wc -c)"
  g=$(readlink /run/secrets/..data)
  s=$(cat /run/secrets/$g/rot /run/secrets/$g/copy/rot | sha256sum | cut -d' ' -f1)
  [ "$(readlink /run/secrets/..data)" = "$g" ] && echo "S $s"
done`
	mustDocker(t, d.runArgs("rot;source=rot,target=copy/rot", []string{"-d", "--name", name}, script)...)
	time.Sleep(300 * time.Millisecond)
	// The updates stop at 100 once the reader has read 50 times each way,
	// or at maxVersions whatever it did.
	const minReads, maxVersions = 50, 400
	valid := map[string]bool{}
	validSet := map[string]bool{}
	for v := 0; v <= maxVersions; v++ {
		valid[sha(versionContent(v))] = true
		validSet[sha(versionContent(v)+versionContent(v))] = true
	}
	last := 0
	for last < maxVersions {
		for range 20 {
			last++
			d.mustCLI(versionContent(last), "secret", "update", "rot", "-")
		}
		if last < 100 {
			continue
		}
		logs := mustDocker(t, "logs", name)
		if strings.Count(logs, "\nF ") >= minReads && strings.Count(logs, "\nS ") >= minReads {
			break
		}
	}
	time.Sleep(300 * time.Millisecond)
	// The mount stays read-only to the container through every rotation,
	// even when a reader held a retired file open and the superblock could
	// not go read-only again.
	if r := docker(t, "exec", name, "touch", "/run/secrets/new"); r.code == 0 {
		t.Fatal("the container could write into its secrets mount after rotations")
	}
	if r := docker(t, "exec", name, "sh", "-c", "echo x > /run/secrets/rot"); r.code == 0 {
		t.Fatal("the container could overwrite a secret after rotations")
	}
	mustDocker(t, "stop", "-t", "1", name)
	logs := mustDocker(t, "logs", name)
	files, sets, zeroed := 0, 0, 0
	for _, line := range strings.Split(logs, "\n") {
		kind, rest, _ := strings.Cut(line, " ")
		sum, nuls, _ := strings.Cut(rest, " ")
		switch kind {
		case "F":
			files++
			if !valid[sum] {
				if nuls != "0" && nuls != "" {
					zeroed++
					continue
				}
				t.Fatalf("a read through the visible name saw no complete version (sha %s)", sum)
			}
		case "S":
			sets++
			if !validSet[sum] {
				t.Fatalf("a read through ..data saw a mixed or torn set (sha %s)", sum)
			}
		}
	}
	if files < minReads || sets < minReads {
		t.Fatalf("too few reads to mean anything after %d updates: %d file reads, %d set reads", last, files, sets)
	}
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	if f := strings.Fields(lines[len(lines)-1]); len(f) > 1 && f[0] == "F" && f[1] != sha(versionContent(last)) {
		t.Errorf("last read is not version %d", last)
	}
	t.Logf("%d file reads (%d of them raced the zeroing of a retired version) and %d set reads during %d updates", files, zeroed, sets, last)
	st, err := d.client().Status(t.Context())
	if err != nil || st.Rotations < uint64(last) {
		t.Fatalf("status rotations %d after %d updates, %v", st.Rotations, last, err)
	}
}

// TestOnUpdateActions checks the signal and restart actions and the pin.
func TestOnUpdateActions(t *testing.T) {
	onEngines(t, testOnUpdateActions)
}

// testOnUpdateActions is TestOnUpdateActions on one engine of the matrix.
func testOnUpdateActions(t *testing.T) {
	d := startDaemon(t)
	d.mustCLI("one", "secret", "create", "cfg", "-")
	sig := "sig-" + d.driver
	restart := "restart-" + d.driver
	pinned := "pinned-" + d.driver
	none := "none-" + d.driver
	mustDocker(t, d.runArgs("cfg", []string{"-d", "--name", sig, "--label", "secretd.on-update=signal:SIGHUP"},
		`trap 'echo "HUP $(cat /run/secrets/cfg)"' HUP; echo ready; while true; do sleep 0.05; done`)...)
	mustDocker(t, d.runArgs("cfg", []string{"-d", "--name", restart, "--label", "secretd.on-update=restart"},
		`echo "start $(cat /run/secrets/cfg)"; exec sleep 600`)...)
	mustDocker(t, d.runArgs("source=cfg@1,target=cfg", []string{"-d", "--name", pinned}, `exec sleep 600`)...)
	mustDocker(t, d.runArgs("cfg", []string{"-d", "--name", none}, `exec sleep 600`)...)
	waitFor(t, 10*time.Second, "signal container ready", func() bool { return strings.Contains(docker(t, "logs", sig).stdout, "ready") })
	startedAt := mustDocker(t, "inspect", "-f", "{{.State.StartedAt}}", restart)

	d.mustCLI("two", "secret", "update", "cfg", "-")

	waitFor(t, 10*time.Second, "SIGHUP after the update", func() bool { return strings.Contains(docker(t, "logs", sig).stdout, "HUP two") })
	waitFor(t, 30*time.Second, "restart after the update", func() bool {
		return mustDocker(t, "inspect", "-f", "{{.State.StartedAt}}", restart) != startedAt &&
			strings.Contains(docker(t, "logs", restart).stdout, "start two")
	})
	if got := mustDocker(t, "exec", pinned, "cat", "/run/secrets/cfg"); got != "one" {
		t.Errorf("pinned container reads %q, want one", got)
	}
	if got := mustDocker(t, "exec", none, "cat", "/run/secrets/cfg"); got != "two" {
		t.Errorf("on-update none reads %q, want two", got)
	}
	// The pinned version outlives --keep and cannot be removed while pinned.
	d.mustCLI("three", "secret", "update", "--keep", "1", "cfg", "-")
	if got := mustDocker(t, "exec", pinned, "cat", "/run/secrets/cfg"); got != "one" {
		t.Errorf("pinned container after --keep 1 reads %q", got)
	}
	kept := d.mustCLI("", "secret", "inspect", "--format", "{{range .Versions}}{{.Version}} {{end}}", "cfg")
	if kept != "1 3" {
		t.Errorf("versions kept with a pin on 1 and --keep 1: %q", kept)
	}
	if r := d.cli("", "secret", "rm", "cfg@1"); r.code == 0 || !strings.Contains(r.stderr, "version 1 of secret 'cfg' is pinned by the following container: "+pinned) {
		t.Errorf("rm of a pinned version: %s", r)
	}
	if r := d.cli("", "secret", "rm", "cfg@3"); r.code == 0 || !strings.Contains(r.stderr, "current version") {
		t.Errorf("rm of the current version: %s", r)
	}
}

// TestLiveGrantAndRevoke changes a running container's secrets without a
// restart; the change survives `docker restart` and goes with the volume.
func TestLiveGrantAndRevoke(t *testing.T) {
	d := startDaemon(t)
	d.mustCLI("a-value", "secret", "create", "a", "-")
	d.mustCLI("b-value", "secret", "create", "b", "-")
	name := "grant-" + d.driver
	mustDocker(t, d.runArgs("a", []string{"-d", "--name", name}, "exec sleep 600")...)
	vol := mustDocker(t, "inspect", "-f", "{{range .Mounts}}{{.Name}}{{end}}", name)
	pid := mustDocker(t, "inspect", "-f", "{{.State.Pid}}", name)

	d.mustCLI("", "container", "update", name, "--secret-add", "source=b,target=keys/b.txt,mode=0400")
	if got := mustDocker(t, "exec", name, "cat", "/run/secrets/keys/b.txt"); got != "b-value" {
		t.Fatalf("granted secret reads %q", got)
	}
	if got := mustDocker(t, "exec", name, "stat", "-c", "%a", "/run/secrets/keys/b.txt"); got != "400" {
		t.Errorf("granted mode %s", got)
	}
	d.mustCLI("", "container", "update", name, "--secret-rm", "a")
	if r := docker(t, "exec", name, "cat", "/run/secrets/a"); r.code == 0 {
		t.Fatalf("revoked secret still readable: %s", r)
	}
	if p := mustDocker(t, "inspect", "-f", "{{.State.Pid}}", name); p != pid {
		t.Fatal("the container restarted for a live change")
	}
	if r := d.cli("", "secret", "rm", "b"); r.code == 0 || !strings.Contains(r.stderr, "in use by the following container: "+name) {
		t.Errorf("rm of a granted secret: %s", r)
	}
	mustDocker(t, "restart", "-t", "1", name)
	if got := mustDocker(t, "exec", name, "ls", "/run/secrets"); got != "keys" {
		t.Errorf("after restart /run/secrets holds %q, want only keys", got)
	}
	// Bad changes are refused and change nothing.
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"container", "update", name, "--secret-add", "nope"}, "secret 'nope' not found"},
		{[]string{"container", "update", name, "--secret-add", "source=b@9"}, "has no version 9"},
		{[]string{"container", "update", name, "--secret-add", "source=a,target=keys/b.txt"}, "duplicate target"},
		{[]string{"container", "update", name, "--secret-rm", "a"}, "not granted"},
		{[]string{"container", "update", "no-such-container-" + d.driver, "--secret-add", "a"}, "no such container"},
		{[]string{"container", "update", name}, "nothing to change"},
	} {
		if r := d.cli("", c.args...); r.code == 0 || !strings.Contains(r.stderr, c.msg) {
			t.Errorf("secretd %v: %s\nwant %q", c.args, r, c.msg)
		}
	}
	if got := mustDocker(t, "exec", name, "cat", "/run/secrets/keys/b.txt"); got != "b-value" {
		t.Errorf("after refused changes: %q", got)
	}
	mustDocker(t, "rm", "-f", "-v", name)
	waitFor(t, 10*time.Second, "grants dropped with the volume", func() bool {
		_, err := os.Stat(filepath.Join(d.dataRoot, "volumes", vol+".json"))
		return os.IsNotExist(err)
	})
}

// TestRotationAcrossRestarts: a container stopped during an update starts
// with the new version; a daemon killed right after an update leaves the
// running container with it and keeps following later updates.
func TestRotationAcrossRestarts(t *testing.T) {
	d := startDaemon(t)
	d.mustCLI("v1", "secret", "create", "s", "-")
	running := "running-" + d.driver
	stopped := "stopped-" + d.driver
	mustDocker(t, d.runArgs("s", []string{"-d", "--name", running}, "exec sleep 600")...)
	mustDocker(t, d.runArgs("s", []string{"-d", "--name", stopped}, "exec sleep 600")...)
	mustDocker(t, "stop", "-t", "1", stopped)
	d.mustCLI("v2", "secret", "update", "s", "-")
	d.kill()
	d.start()
	if got := mustDocker(t, "exec", running, "cat", "/run/secrets/s"); got != "v2" {
		t.Errorf("running container after update and daemon crash: %q", got)
	}
	mustDocker(t, "start", stopped)
	if got := mustDocker(t, "exec", stopped, "cat", "/run/secrets/s"); got != "v2" {
		t.Errorf("container stopped during the update: %q", got)
	}
	d.mustCLI("v3", "secret", "update", "s", "-")
	for _, c := range []string{running, stopped} {
		if got := mustDocker(t, "exec", c, "cat", "/run/secrets/s"); got != "v3" {
			t.Errorf("%s after a later update: %q", c, got)
		}
	}
	// Bad updates change nothing.
	if r := d.cli("v", "secret", "update", "nope", "-"); r.code == 0 || !strings.Contains(r.stderr, "secret 'nope' not found") {
		t.Errorf("update of a missing secret: %s", r)
	}
	if r := d.cli("", "secret", "update", "s", "-"); r.code == 0 || !strings.Contains(r.stderr, "secret data must be larger than 0") {
		t.Errorf("empty update: %s", r)
	}
	if got := mustDocker(t, "exec", running, "cat", "/run/secrets/s"); got != "v3" {
		t.Errorf("after refused updates: %q", got)
	}
}
