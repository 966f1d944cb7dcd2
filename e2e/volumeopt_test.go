package e2e

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestVolumeOptionDeclaration: a declaration carried in the anonymous
// volume's options mounts without asking the engine, and the engine's
// events then name the container for `secretd ps`, the audit trail and
// `secret rm`, as a label declaration's Mount does at once.
func TestVolumeOptionDeclaration(t *testing.T) {
	t.Parallel()
	d := startTestDaemon(t)
	value := canary(t)
	d.mustCLI(value, "secret", "create", "volopt_pass", "-")
	ctr := d.ctrName("volopt")
	mnt := `type=volume,volume-driver=` + d.driver + `,dst=/run/secrets,volume-nocopy,"volume-opt=secrets=source=volopt_pass,target=app/pass,mode=0400"`
	mustDocker(t, "run", "-d", "--network", "none", "--label", d.label(), "--name", ctr, "--mount", mnt, image, "sh", "-c", sleeper)
	if got := execSh(t, ctr, "cat /run/secrets/app/pass"); got != value {
		t.Fatalf("read %q from the container", got)
	}
	if m := regexp.MustCompile(`msg="secrets mounted" [^\n]* engine_lookup=(\w+)`).FindStringSubmatch(d.log()); m == nil || m[1] != "false" {
		t.Errorf("the Mount of a volume carrying its declaration asked the engine: %v", m)
	}
	var mount string
	waitFor(t, 10*time.Second, "secretd ps to name the container", func() bool {
		for _, tk := range d.tasks(t) {
			if tk.ContainerName == ctr && len(tk.ContainerID) == 64 {
				mount = tk.Mount
				return true
			}
		}
		return false
	})
	if r := d.cli("", "secret", "rm", "volopt_pass"); r.code == 0 || !strings.Contains(r.stderr, ctr) {
		t.Errorf("rm of a secret in use: %s", r)
	}
	named := false
	for _, e := range auditEvents(t, filepath.Join(d.dataRoot, "audit.log")) {
		if e["event"] == "container.mount" {
			named = e["container"] == ctr
		}
	}
	if !named {
		t.Errorf("the audit trail's mount event does not name %s", ctr)
	}
	mustDocker(t, "rm", "-f", "-v", ctr)
	d.waitGone(t, mount, "the mount after docker rm")
}
