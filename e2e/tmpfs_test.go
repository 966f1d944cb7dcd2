package e2e

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// heldOpen is a container command that opens the declared file "db" at
// start and keeps it open, as a process that read its secret once would:
// /proc/1/fd/3 then reaches that very file, whatever happens to its name.
const heldOpen = "exec 3</run/secrets/db; trap 'exit 0' TERM; sleep 600 & wait"

// everyFile prints the content of every regular file under /run/secrets,
// the reserved ..data and ..<generation> names included.
const everyFile = "find /run/secrets -type f -exec cat {} +"

// TestRotationLeavesNothingOld rotates one secret and revokes another, and
// checks from inside the container, as its user could: no file under the
// mount holds the old value or the revoked secret, and the file a process
// held open since before reads zeros.
func TestRotationLeavesNothingOld(t *testing.T) {
	t.Parallel()
	d := startTestDaemon(t)
	oldV, newV, revoked := canary(t), canary(t), canary(t)
	d.mustCLI(oldV, "secret", "create", "db", "-")
	d.mustCLI(revoked, "secret", "create", "gone", "-")
	ctr := d.ctrName("nothing-old")
	mustDocker(t, d.runArgs("db;gone", []string{"-d", "--name", ctr}, heldOpen)...)
	if got := execSh(t, ctr, everyFile); !strings.Contains(got, oldV) || !strings.Contains(got, revoked) {
		t.Fatalf("before the update the mount does not hold both secrets: %q", got)
	}

	d.mustCLI(newV, "secret", "update", "db", "-")
	d.mustCLI("", "container", "update", ctr, "--secret-rm", "gone")

	got := execSh(t, ctr, everyFile)
	for what, v := range map[string]string{"the rotated-out value": oldV, "the revoked secret": revoked} {
		if strings.Contains(got, v) {
			t.Errorf("a file under /run/secrets still holds %s", what)
		}
	}
	if !strings.Contains(got, newV) {
		t.Errorf("the new value is not in the mount")
	}
	if names := execSh(t, ctr, "ls -a /run/secrets"); strings.Contains(names, "gone") {
		t.Errorf("the revoked secret still has a name: %q", names)
	}
	// The process that opened the old version reads zeros, of its length.
	size, err := strconv.Atoi(execSh(t, ctr, "wc -c < /proc/1/fd/3"))
	if err != nil || size != len(oldV) {
		t.Errorf("the held file has %d bytes (%v), want %d", size, err, len(oldV))
	}
	if left := execSh(t, ctr, `tr -d '\000' < /proc/1/fd/3 | wc -c`); left != "0" {
		t.Errorf("the held file of the old version has %s bytes that are not zero", left)
	}
}

// TestSecretGrowsAcrossUpdates grows a secret from one byte to just under
// the 500 KiB limit over several updates: the third used to fail with no
// space left in the container's tmpfs, and the container kept the old value.
func TestSecretGrowsAcrossUpdates(t *testing.T) {
	t.Parallel()
	d := startTestDaemon(t)
	d.mustCLI("x", "secret", "create", "grow", "-")
	ctr := d.ctrName("grow")
	mustDocker(t, d.runArgs("grow", []string{"-d", "--name", ctr}, sleeper)...)
	for v := 1; v <= 4; v++ {
		data := string(bytes.Repeat([]byte{byte('a' + v)}, 499<<10))
		if r := d.cli(data, "secret", "update", "grow", "-"); r.code != 0 {
			t.Fatalf("update %d to %d bytes: %s", v, len(data), r)
		}
		want := fmt.Sprintf("%d %d", len(data), len(data))
		if got := execSh(t, ctr, fmt.Sprintf("wc -c < /run/secrets/grow; tr -cd '%c' < /run/secrets/grow | wc -c", 'a'+v)); strings.Join(strings.Fields(got), " ") != want {
			t.Fatalf("after update %d the container reads %q, want %q (size and bytes of the new version)", v, got, want)
		}
	}
}

// checkNoswap asserts, from inside the container ctr, that its secrets
// mount is noswap whenever the host kernel supports it, keeps the
// hardening flags, and that `secretd status` (through env) says the same.
func checkNoswap(t *testing.T, ctr string, env []string) {
	t.Helper()
	line := mustDocker(t, "exec", ctr, "grep", " /run/secrets ", "/proc/self/mountinfo")
	_, fsPart, ok := strings.Cut(line, " - ")
	fields := strings.Fields(fsPart)
	if !ok || len(fields) < 3 || fields[0] != "tmpfs" {
		t.Fatalf("the container's /run/secrets is not a tmpfs: %q", line)
	}
	super := strings.Split(fields[2], ",")
	perMount := strings.Split(strings.Fields(line)[5], ",")
	for _, o := range []string{"ro", "nosuid", "nodev", "noexec"} {
		if !contains(perMount, o) {
			t.Errorf("the container's secrets mount lacks %s: %q", o, line)
		}
	}
	want := noswapSupported(t)
	if got := contains(super, "noswap"); got != want {
		t.Errorf("the container's secrets mount has noswap=%v, the kernel supports it: %v (%q)", got, want, line)
	}
	r := runCmd(t, env, "", binary, "status", "--format", "{{.Noswap}}")
	if r.code != 0 || strings.TrimSpace(r.stdout) != strconv.FormatBool(want) {
		t.Errorf("secretd status says noswap %s, want %v", r, want)
	}
	if r := runCmd(t, env, "", binary, "status"); !strings.Contains(r.stdout, "Noswap:") {
		t.Errorf("secretd status has no Noswap line: %s", r)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestNoswapReported checks that the daemon's start log and `secretd
// status` say whether secrets mounts use noswap, as the kernel decides.
func TestNoswapReported(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	want := noswapSupported(t)
	line := "secrets mounts use noswap"
	if !want {
		line = "secrets mounts cannot use noswap"
	}
	if !strings.Contains(d.log(), line) {
		t.Errorf("the daemon's log lacks %q:\n%s", line, d.log())
	}
	if st := d.status(t); st.Noswap != want {
		t.Errorf("status Noswap %v, want %v (the kernel's answer)", st.Noswap, want)
	}
}
