package e2e

import (
	"strings"
	"testing"
)

// Live grants and revokes belong to a volume: a revoke acts on the volume
// that holds the secret, a grant on the one at /run/secrets or the one
// named with --volume.

// grantsContainer runs a container with a label volume at /run/secrets
// declaring g_a and g_b and, with two, an option volume at /etc/app
// declaring g_c.
func grantsContainer(t *testing.T, d *daemon, name string, two bool) (appVol string) {
	t.Helper()
	extra := []string{"-d", "--name", name}
	if two {
		appVol = name + "-app"
		mustDocker(t, "volume", "create", "-d", d.driver, "-o", "secrets=g_c", appVol)
		extra = append(extra, "-v", appVol+":/etc/app")
	}
	mustDocker(t, d.runArgs("g_a;g_b", extra, sleeper)...)
	return appVol
}

// TestGrantRevokeTwoVolumes: with two secretd volumes in one container,
// grant and revoke work on each, and neither leaks into the other. (The
// old code rewrote every mount with the first volume's declaration: g_c
// could not be revoked, and a grant showed up in both directories.)
func TestGrantRevokeTwoVolumes(t *testing.T) {
	t.Parallel()
	d := startTestDaemon(t)
	v := d.secrets(t, "g_a", "g_b", "g_c", "g_d")
	c := d.ctrName("twovol")
	appVol := grantsContainer(t, d, c, true)
	check := func(what, run, app string) {
		t.Helper()
		if got := secretsIn(t, c, "/run/secrets"); got != run {
			t.Errorf("%s: /run/secrets holds %q, want %q", what, got, run)
		}
		if got := secretsIn(t, c, "/etc/app"); got != app {
			t.Errorf("%s: /etc/app holds %q, want %q", what, got, app)
		}
	}
	check("at start", want(v, "g_a", "g_b"), want(v, "g_c"))
	d.mustCLI("", "container", "update", c, "--secret-rm", "g_c")
	check("after rm g_c", want(v, "g_a", "g_b"), "")
	d.mustCLI("", "container", "update", c, "--secret-add", "g_d")
	check("after add g_d", want(v, "g_a", "g_b", "g_d"), "")
	d.mustCLI("", "container", "update", c, "--volume", appVol, "--secret-add", "g_c")
	check("after add g_c to the app volume", want(v, "g_a", "g_b", "g_d"), want(v, "g_c"))
	d.mustCLI("", "container", "update", c, "--volume", appVol, "--secret-add", "g_a")
	d.mustCLI("", "container", "update", c, "--secret-rm", "g_a")
	check("after rm g_a, held by both", want(v, "g_b", "g_d"), want(v, "g_c"))
	mustDocker(t, "restart", "-t", "1", c)
	check("after docker restart", want(v, "g_b", "g_d"), want(v, "g_c"))
}

// TestGrantRevokeSequences: rm then add of the same source; add with
// another target after rm; rm of the last secret, then restart: each on a
// container with one and with two secretd volumes.
func TestGrantRevokeSequences(t *testing.T) {
	t.Parallel()
	d := startTestDaemon(t)
	v := d.secrets(t, "g_a", "g_b", "g_c")
	for _, two := range []bool{false, true} {
		label := map[bool]string{false: "one volume", true: "two volumes"}[two]
		t.Run(label, func(t *testing.T) {
			c := d.ctrName("seq" + map[bool]string{false: "1", true: "2"}[two])
			grantsContainer(t, d, c, two)
			run := func(what, wantRun string) {
				t.Helper()
				if got := secretsIn(t, c, "/run/secrets"); got != wantRun {
					t.Errorf("%s: /run/secrets holds %q, want %q", what, got, wantRun)
				}
				if two {
					if got := secretsIn(t, c, "/etc/app"); got != want(v, "g_c") {
						t.Errorf("%s: /etc/app holds %q", what, got)
					}
				}
			}
			// rm then add of the same source: no duplicate target.
			d.mustCLI("", "container", "update", c, "--secret-rm", "g_a")
			run("after rm g_a", want(v, "g_b"))
			d.mustCLI("", "container", "update", c, "--secret-add", "g_a")
			run("after add g_a back", want(v, "g_a", "g_b"))
			// add with another target after rm: no ghost of the old one.
			d.mustCLI("", "container", "update", c, "--secret-rm", "g_a")
			d.mustCLI("", "container", "update", c, "--secret-add", "source=g_a,target=renamed")
			if got := secretsIn(t, c, "/run/secrets"); got != "g_b="+v["g_b"]+"\nrenamed="+v["g_a"] {
				t.Errorf("after rm g_a and add it as renamed: %q", got)
			}
			// rm of the last secret, then restart: an empty directory.
			d.mustCLI("", "container", "update", c, "--secret-rm", "g_a", "--secret-rm", "g_b")
			run("after rm of every secret", "")
			if r := docker(t, "restart", "-t", "1", c); r.code != 0 {
				t.Fatalf("docker restart with every secret revoked: %s", r)
			}
			run("after restart with every secret revoked", "")
			d.mustCLI("", "container", "update", c, "--secret-add", "g_b")
			run("after granting again", want(v, "g_b"))
		})
	}
}

// TestSharedVolumeGrant: a grant to a volume other containers use too is
// refused, naming them, unless --shared says so.
func TestSharedVolumeGrant(t *testing.T) {
	t.Parallel()
	d := startTestDaemon(t)
	v := d.secrets(t, "sh_a", "sh_b")
	vol := d.ctrName("sharedgrant")
	mustDocker(t, "volume", "create", "-d", d.driver, "-o", "secrets=sh_a", vol)
	one, two := d.ctrName("sg1"), d.ctrName("sg2")
	for _, c := range []string{one, two} {
		mustDocker(t, "run", "-d", "--network", "none", "--label", d.label(), "--name", c, "-v", vol+":/run/secrets", image, "sh", "-c", sleeper)
	}
	r := d.cli("", "container", "update", one, "--secret-add", "sh_b")
	if r.code == 0 || !strings.Contains(r.stderr, "shared with container "+two) || !strings.Contains(r.stderr, "--shared") {
		t.Errorf("grant on a shared volume: %s", r)
	}
	d.mustCLI("", "container", "update", one, "--shared", "--secret-add", "sh_b")
	for _, c := range []string{one, two} {
		if got := secretsIn(t, c, "/run/secrets"); got != want(v, "sh_a", "sh_b") {
			t.Errorf("%s after a --shared grant: %q", c, got)
		}
	}
}
