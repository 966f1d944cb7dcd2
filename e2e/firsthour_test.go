package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStoppedDaemon walks what a user meets with secretd stopped (as by
// `systemctl stop secretd`): `secretd run` and `secretd compose up` fail at
// once, before docker, with the words `secretd secret ls` uses; `docker
// stop` of a running container still stops it, but its plaintext stays on
// the host until secretd is back and wipes it, as the README's limits say.
func TestStoppedDaemon(t *testing.T) {
	t.Parallel()
	d := startTestDaemon(t)
	value := canary(t)
	d.mustCLI(value, "secret", "create", "s", "-")
	env := []string{"SECRETD_HOST=unix://" + d.sock}
	running := d.ctrName("running")
	if r := runCmd(t, env, "", binary, "run", "--secret", "s", "--", "-d", "--name", running, "--network", "none",
		"--label", d.label(), image, "sh", "-c", sleeper); r.code != 0 {
		t.Fatalf("secretd run with the daemon up, the driver its own: %s", r)
	}
	mount := d.taskMount(t, running)

	d.stop()
	ls := d.cli("", "secret", "ls")
	if ls.code == 0 || !strings.HasPrefix(ls.stderr, "Error: cannot connect to secretd at unix://"+d.sock+": is the daemon running?") {
		t.Fatalf("secret ls with the daemon stopped: %s", ls)
	}
	r := runCmd(t, env, "", binary, "run", "--driver", d.driver, "--secret", "s", "--",
		"--rm", "--network", "none", "--label", d.label(), image, "cat", "/run/secrets/s")
	if r.code != 125 || r.stderr != ls.stderr || r.stdout != "" {
		t.Errorf("secretd run with the daemon stopped: %s\nwant exit 125 and secret ls's words: %s", r, ls.stderr)
	}

	dir := t.TempDir()
	project := "fh" + strings.ReplaceAll(d.driver, "-", "")
	writeFile(t, filepath.Join(dir, "stack.yml"), "version: \"3.7\"\nservices:\n  app:\n    image: "+image+
		"\n    command: [\"cat\", \"/run/secrets/s\"]\n    network_mode: none\n    labels: [\""+d.label()+"\"]\n    secrets: [s]\n"+
		"secrets:\n  s:\n    external: true\n")
	r = runCmd(t, env, "", binary, "compose", "-f", filepath.Join(dir, "stack.yml"), "-p", project, "up", "-d")
	if r.code == 0 || !strings.HasSuffix(r.stderr, ls.stderr) || strings.Contains(r.stderr, "obsolete") {
		t.Errorf("secretd compose up with the daemon stopped: %s\nwant secret ls's words: %s", r, ls.stderr)
	}
	if out := mustDocker(t, "ps", "-aq", "--filter", "label="+d.label(), "--filter", "name=^/"+project); out != "" {
		t.Errorf("compose up with the daemon stopped created containers: %s", out)
	}
	if out := mustDocker(t, "ps", "-aq", "--filter", "label="+d.label()); out != mustDocker(t, "ps", "-aq", "--filter", "name=^/"+running+"$") {
		t.Errorf("containers other than %s exist: docker was called: %s", running, out)
	}

	// docker stop waits on the missing driver, then stops the container
	// anyway; the secret stays in memory on the host meanwhile.
	start := time.Now()
	if r := docker(t, "stop", "-t", "1", running); r.code != 0 {
		t.Fatalf("docker stop with secretd stopped: %s", r)
	}
	t.Logf("docker stop with secretd stopped took %s", time.Since(start).Round(100*time.Millisecond))
	if b, err := os.ReadFile(filepath.Join(mount, "s")); err != nil || string(b) != value {
		t.Errorf("with secretd stopped the stopped container's secret is not left at %s (%v): "+
			"the README's limits say it is; correct them", mount, err)
	}
	d.start()
	d.waitGone(t, mount, "the secrets of the container stopped while secretd was down")
}

// TestRunChecksDriver: a mistyped --driver is refused by `secretd run`
// before docker looks for a plugin of that name (15 s, then an image to
// pull), naming the driver secretd serves.
func TestRunChecksDriver(t *testing.T) {
	t.Parallel()
	d := startTestDaemon(t)
	d.mustCLI("v", "secret", "create", "s", "-")
	env := []string{"SECRETD_HOST=unix://" + d.sock}
	r := runCmd(t, env, "", binary, "run", "--driver", d.driver+"x", "--secret", "s", "--",
		"--rm", "--network", "none", "--label", d.label(), image, "true")
	want := `Error: volume driver "` + d.driver + `x" is not the one secretd serves: the daemon at unix://` + d.sock + ` serves "` + d.driver + `"`
	if r.code != 125 || !strings.HasPrefix(r.stderr, want) {
		t.Errorf("secretd run --driver %sx: %s\nwant exit 125 and %q", d.driver, r, want)
	}
	if out := mustDocker(t, "ps", "-aq", "--filter", "label="+d.label()); out != "" {
		t.Errorf("a refused driver left containers: %s", out)
	}
	if st := d.mustCLI("", "status", "--format", "{{.VolumeDriver}}"); st != d.driver {
		t.Errorf("status's VolumeDriver %q, want %q", st, d.driver)
	}
}
