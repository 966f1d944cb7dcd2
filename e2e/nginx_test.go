package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secretd/secretd/secretdtest"
)

// nginxImage is a busybox stand-in for nginx: an image file default.conf
// in /etc/nginx/conf.d, which an absolute secret target must not hide.
func nginxImage(t *testing.T, d *daemon) string {
	t.Helper()
	img := "secretd-e2e-nginx:" + strings.TrimPrefix(d.driver, "secretd-e2e-")
	t.Cleanup(func() { removeImage(t, img) })
	if err := secretdtest.BusyboxImage(engineOf(t).dockerArgs(), img, map[string][]byte{"etc/nginx/conf.d/default.conf": []byte("server { listen 80; }\n")}); err != nil {
		t.Fatal(err)
	}
	return img
}

// TestNginxAbsoluteTarget runs seed 004's nginx walkthrough shape with
// `secretd run`: site.key and site.crt at /run/secrets, site.conf at
// /etc/nginx/conf.d/site.conf beside the image's default.conf, src= as the
// seed writes it. The absolute target is a one-file volume, a bind mount
// of one file of secretd's tmpfs: it holds that file's inode, so a
// rotation (a new inode linked in place) reaches it at the next start,
// while /run/secrets gets it at once.
func TestNginxAbsoluteTarget(t *testing.T) {
	t.Parallel()
	onEngines(t, testNginxAbsoluteTarget)
}

// testNginxAbsoluteTarget is TestNginxAbsoluteTarget on one engine of the matrix.
func testNginxAbsoluteTarget(t *testing.T) {
	d := startTestDaemon(t)
	img := nginxImage(t, d)
	d.mustCLI("KEY-1", "secret", "create", "site.key", "-")
	d.mustCLI("CRT-1", "secret", "create", "site.crt", "-")
	d.mustCLI("server { listen 443 ssl; }", "secret", "create", "site.conf", "-")
	ctr := d.ctrName("nginx")
	r := runCmd(t, append(d.engineEnv(), "SECRETD_HOST=unix://"+d.sock), "", binary, "run", "--driver", d.driver,
		"--secret", "site.key", "--secret", "site.crt", "--secret", "src=site.conf,target=/etc/nginx/conf.d/site.conf,mode=0440",
		"--", "-d", "--name", ctr, "--network", "none", "--label", d.label(), img, "sleep", "3600")
	if r.code != 0 {
		t.Fatalf("secretd run: %s", r)
	}
	if got := execSh(t, ctr, "ls /etc/nginx/conf.d | tr '\\n' ' '"); strings.TrimSpace(got) != "default.conf site.conf" {
		t.Errorf("/etc/nginx/conf.d holds %q, want the image's default.conf beside site.conf", got)
	}
	if got := execSh(t, ctr, "cat /etc/nginx/conf.d/default.conf /etc/nginx/conf.d/site.conf"); got != "server { listen 80; }\nserver { listen 443 ssl; }" {
		t.Errorf("conf.d files hold %q", got)
	}
	if got := execSh(t, ctr, "stat -c '%u:%g %a' /etc/nginx/conf.d/site.conf"); got != "0:0 440" {
		t.Errorf("site.conf is %s, want 0:0 440", got)
	}
	if got := execSh(t, ctr, "ls /run/secrets | tr '\\n' ' '"); strings.TrimSpace(got) != "site.crt site.key" {
		t.Errorf("/run/secrets holds %q", got)
	}
	// Read-only and on tmpfs, as /run/secrets.
	if got := execSh(t, ctr, "grep ' /etc/nginx/conf.d/site.conf ' /proc/mounts | cut -d' ' -f3,4 | cut -d, -f1"); got != "tmpfs ro" {
		t.Errorf("site.conf is mounted %q, want a read-only tmpfs file", got)
	}
	if r := docker(t, "exec", ctr, "sh", "-c", "echo x > /etc/nginx/conf.d/site.conf"); r.code == 0 {
		t.Errorf("site.conf is writable in the container")
	}

	// ps shows the full path of the bound file, and the version in it.
	psConf := func() string {
		return d.mustCLI("", "ps", "--filter", "secret=site.conf", "--format", "{{.Name}} {{.Version}} {{.Target}}")
	}
	// The container's name and where it mounts the file come from the
	// engine's events, right after its start.
	waitFor(t, 10*time.Second, "secretd ps to show the bound file's full path", func() bool {
		return psConf() == ctr+" 1 /etc/nginx/conf.d/site.conf"
	})

	d.mustCLI("KEY-2", "secret", "update", "site.key", "-")
	// The update stores the version and says that the container gets it
	// only at its next start, naming it and the file: not an error, not
	// silence.
	r = d.cli("server { listen 8443 ssl; }", "secret", "update", "site.conf", "-")
	if r.code != 0 || !strings.HasSuffix(strings.TrimSpace(r.stdout), "version 2") ||
		!strings.Contains(r.stderr, ctr+" gets version 2 of secret 'site.conf' at its next start: /etc/nginx/conf.d/site.conf is a file bound at an absolute target") {
		t.Errorf("secret update of the bound file: %s", r)
	}
	waitFor(t, 10*time.Second, "the rotated key in /run/secrets", func() bool {
		return execSh(t, ctr, "cat /run/secrets/site.key") == "KEY-2"
	})
	if got := execSh(t, ctr, "cat /etc/nginx/conf.d/site.conf"); got != "server { listen 443 ssl; }" {
		t.Errorf("before a restart, the bound site.conf holds %q, want the version it started with", got)
	}
	if got := psConf(); got != ctr+" 1 /etc/nginx/conf.d/site.conf" {
		t.Errorf("before a restart secretd ps shows %q, want the version the file holds, 1", got)
	}
	// A restart of secretd adopts the mount and leaves the file whole.
	d.stop()
	d.start()
	if got := execSh(t, ctr, "cat /etc/nginx/conf.d/site.conf"); got != "server { listen 443 ssl; }" {
		t.Errorf("after secretd restarted, the bound site.conf holds %q, want the version it started with", got)
	}
	if got := psConf(); got != ctr+" 1 /etc/nginx/conf.d/site.conf" {
		t.Errorf("after secretd restarted, secretd ps shows %q, want version 1", got)
	}
	mustDocker(t, "restart", "-t", "1", ctr)
	if got := execSh(t, ctr, "cat /etc/nginx/conf.d/site.conf; echo; ls /etc/nginx/conf.d | tr '\\n' ' '"); got != "server { listen 8443 ssl; }\ndefault.conf site.conf" {
		t.Errorf("after a restart, conf.d holds %q", got)
	}
	waitFor(t, 10*time.Second, "ps to show the restarted container's version", func() bool {
		return psConf() == ctr+" 2 /etc/nginx/conf.d/site.conf"
	})
	mustDocker(t, "rm", "-f", "-v", ctr)

	// With secretd.on-update=restart, the rotation restarts the container,
	// which then binds the new file.
	ctr2 := d.ctrName("nginx-restart")
	r = runCmd(t, append(d.engineEnv(), "SECRETD_HOST=unix://"+d.sock), "", binary, "run", "--driver", d.driver,
		"--secret", "source=site.conf,target=/etc/nginx/conf.d/site.conf",
		"--", "-d", "--name", ctr2, "--network", "none", "--label", d.label(), "--label", "secretd.on-update=restart", img, "sleep", "3600")
	if r.code != 0 {
		t.Fatalf("secretd run: %s", r)
	}
	waitFor(t, 10*time.Second, "secretd ps to name the container", func() bool {
		return psConf() == ctr2+" 2 /etc/nginx/conf.d/site.conf"
	})
	r = d.cli("server { listen 9443 ssl; }", "secret", "update", "site.conf", "-")
	if r.code != 0 || !strings.Contains(r.stderr, ctr2+" gets version 3 of secret 'site.conf' once restarted") {
		t.Errorf("secret update of a bound file whose container restarts on update: %s", r)
	}
	waitFor(t, 20*time.Second, "the restarted container to bind the new site.conf", func() bool {
		r := docker(t, "exec", ctr2, "cat", "/etc/nginx/conf.d/site.conf")
		return r.code == 0 && r.stdout == "server { listen 9443 ssl; }"
	})
	mustDocker(t, "rm", "-f", "-v", ctr2)
}

// TestNginxStackAbsoluteTarget: the same shape through `secretd compose`.
func TestNginxStackAbsoluteTarget(t *testing.T) {
	t.Parallel()
	requireCompose(t)
	d := startTestDaemon(t)
	img := nginxImage(t, d)
	d.mustCLI("KEY-1", "secret", "create", "site.key", "-")
	dir := t.TempDir()
	yml := `services:
  nginx:
    image: ` + img + `
    network_mode: none
    labels: ["` + d.label() + `"]
    stop_grace_period: 1s
    command: ["sleep", "3600"]
    secrets:
      - site.key
      - source: site.conf
        target: /etc/nginx/conf.d/site.conf
secrets:
  site.key:
    external: true
  site.conf:
    file: ./site.conf
`
	if err := os.WriteFile(filepath.Join(dir, "compose.yml"), []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "site.conf"), []byte("server { listen 443 ssl; }"), 0o644); err != nil {
		t.Fatal(err)
	}
	project := "sdnginx" + strings.TrimPrefix(d.driver, "secretd-e2e-")
	compose := func(args ...string) result {
		return runCmd(t, []string{"SECRETD_HOST=unix://" + d.sock}, "", binary,
			append([]string{"compose", "--driver", d.driver, "-p", project, "-f", filepath.Join(dir, "compose.yml")}, args...)...)
	}
	t.Cleanup(func() { compose("down", "-v", "-t", "1", "--remove-secrets") })
	if r := compose("up", "-d"); r.code != 0 {
		t.Fatalf("secretd compose up: %s", r)
	}
	ctr := project + "_nginx_1"
	if got := execSh(t, ctr, "ls /etc/nginx/conf.d | tr '\\n' ' '; cat /etc/nginx/conf.d/site.conf; echo; cat /run/secrets/site.key"); got != "default.conf site.conf server { listen 443 ssl; }\nKEY-1" {
		t.Errorf("the nginx service sees %q", got)
	}
	// A changed site.conf is a new version at the next `up`, which says
	// that the running container gets it only at its next start.
	secret := project + "_site.conf"
	psConf := func() string {
		return d.mustCLI("", "ps", "--filter", "secret="+secret, "--format", "{{.Name}} {{.Version}} {{.Target}}")
	}
	waitFor(t, 10*time.Second, "secretd ps to name the container", func() bool { return psConf() == ctr+" 1 /etc/nginx/conf.d/site.conf" })
	if err := os.WriteFile(filepath.Join(dir, "site.conf"), []byte("server { listen 8443 ssl; }"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := compose("up", "-d")
	if r.code != 0 || !strings.Contains(r.stderr, ctr+" gets version 2 of secret '"+secret+"' at its next start: /etc/nginx/conf.d/site.conf is a file bound") {
		t.Errorf("secretd compose up with a changed site.conf: %s", r)
	}
	if got := psConf(); got != ctr+" 1 /etc/nginx/conf.d/site.conf" {
		t.Errorf("secretd ps after the update shows %q, want the version the file holds, 1", got)
	}
	if r := compose("down", "-v", "-t", "1", "--remove-secrets"); r.code != 0 {
		t.Fatalf("down: %s", r)
	}
}
