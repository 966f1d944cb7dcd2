package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSecretUpdateReportsUnreachedContainers breaks one container's mount
// behind secretd's back (its host-side tmpfs is detached, as a broken host
// would leave it), so a rotation cannot reach it. `secretd secret update`
// must fail and name that container and no other, the container it did
// reach reads the new value, and the audit trail records the failure.
func TestSecretUpdateReportsUnreachedContainers(t *testing.T) {
	t.Parallel()
	d := startTestDaemon(t)
	v1, v2 := canary(t), canary(t)
	d.mustCLI(v1, "secret", "create", "db", "-")
	good, broken := d.ctrName("rot-good"), d.ctrName("rot-broken")
	for _, c := range []string{good, broken} {
		mustDocker(t, d.runArgs("db", []string{"-d", "--name", c}, sleeper)...)
	}
	if err := unix.Unmount(hostMount(t, d, broken), unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}

	r := d.cli(v2, "secret", "update", "db", "-")
	if r.code == 0 {
		t.Fatalf("secret update answered success though %s did not get the new version: %s", broken, r)
	}
	for _, want := range []string{"version 2 of secret 'db'", "did not reach 1 container", broken + " ("} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the error lacks %q: %s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr, good) || strings.Contains(r.stderr, v1) || strings.Contains(r.stderr, v2) {
		t.Errorf("the error names a container that got the version, or a secret value: %s", r.stderr)
	}
	if got := execSh(t, good, "cat /run/secrets/db"); got != v2 {
		t.Errorf("%s reads %q, want the new version", good, got)
	}
	// What the error says of the container it did not reach holds.
	if got := execSh(t, broken, "cat /run/secrets/db"); got != v1 {
		t.Errorf("%s reads %q, want the previous version, as the error says", broken, got)
	}
	// The version is stored: a new container gets it.
	if got := mustDocker(t, d.runArgs("db", []string{"--rm"}, "cat /run/secrets/db")...); got != v2 {
		t.Errorf("a new container reads %q, want the new version", got)
	}
	var failed []string
	for _, e := range auditEvents(t, filepath.Join(d.dataRoot, "audit.log")) {
		if e["event"] == "container.rotate.failed" {
			failed = append(failed, e["container"].(string))
			if e["secret"] != "db" || e["version"] != 2.0 || e["reason"] == "" {
				t.Errorf("audit event %v", e)
			}
		}
	}
	if len(failed) != 1 || failed[0] != broken {
		t.Errorf("audit trail records failed rotations for %v, want only %s", failed, broken)
	}
}
