package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestOneLabelTwoVolumes: one secretd.secrets label serves a container
// with two secretd volumes; each volume holds only the entries whose
// targets it holds (before, each got the whole label, and a label with an
// absolute target was refused).
func TestOneLabelTwoVolumes(t *testing.T) {
	t.Parallel()
	d := startTestDaemon(t)
	v := d.secrets(t, "split_run", "split_app")
	c := d.ctrName("split")
	mustDocker(t, "run", "-d", "--network", "none", "--label", d.label(), "--name", c,
		"--label", "secretd.secrets=split_run;source=split_app,target=/etc/app/app.conf,mode=0400",
		"--mount", "type=volume,volume-driver="+d.driver+",dst=/run/secrets",
		"--mount", "type=volume,volume-driver="+d.driver+",dst=/etc/app",
		image, "sh", "-c", sleeper)
	if got := secretsIn(t, c, "/run/secrets"); got != want(v, "split_run") {
		t.Errorf("/run/secrets holds %q, want only split_run", got)
	}
	if got, w := secretsIn(t, c, "/etc/app"), "app.conf="+v["split_app"]; got != w {
		t.Errorf("/etc/app holds %q, want %q", got, w)
	}
	if m := execSh(t, c, "stat -c %a /etc/app/app.conf"); m != "400" {
		t.Errorf("/etc/app/app.conf has mode %s, want 400", m)
	}
}

// TestLabelWithoutVolumeWarns: a container that declares secrets with the
// label but mounts no secretd volume starts without them, and secretd's
// log says so, naming it.
func TestLabelWithoutVolumeWarns(t *testing.T) {
	t.Parallel()
	d := startTestDaemon(t)
	d.secrets(t, "unserved")
	c := d.ctrName("unserved")
	mustDocker(t, "run", "-d", "--network", "none", "--label", d.label(), "--name", c,
		"--label", "secretd.secrets=unserved", image, "sh", "-c", sleeper)
	waitFor(t, 30*time.Second, "the warning about "+c, func() bool {
		for _, l := range strings.Split(d.log(), "\n") {
			if strings.Contains(l, "level=WARN") && strings.Contains(l, "mounts no secretd volume") && strings.Contains(l, "container="+c) {
				return true
			}
		}
		return false
	})
}
