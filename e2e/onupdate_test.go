package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// badOnUpdates are the mistyped secretd.on-update labels of issue 26: an
// unknown signal and a restart policy's spelling.
var badOnUpdates = []string{"signal:SIGHUPP", "restart-always"}

// TestOnUpdateTypoFailsTheStart: a secretd.on-update label that means
// nothing fails the container's start on every path, naming the label and
// its value, like any other bad declaration, and leaves nothing mounted.
// Before, with the declaration on the volume, the container started and
// the label was only logged at WARN.
func TestOnUpdateTypoFailsTheStart(t *testing.T) {
	t.Parallel()
	onEngines(t, testOnUpdateTypoFailsTheStart)
}

func testOnUpdateTypoFailsTheStart(t *testing.T) {
	d := startTestDaemon(t)
	d.secrets(t, "ou_a")
	refused := func(what string, r result, code int, want string) {
		t.Helper()
		if r.code == 0 || (code != 0 && r.code != code) || !strings.Contains(r.stderr, want) {
			t.Errorf("%s: want exit %d naming %s, got %s", what, code, want, r)
		}
		if running := mustDocker(t, "ps", "-q", "--filter", "label="+d.label()); running != "" {
			t.Errorf("%s: containers running: %s", what, running)
		}
		if m := d.mounts(); len(m) != 0 {
			t.Errorf("%s: mounted: %v", what, m)
		}
	}
	for i, bad := range badOnUpdates {
		want := `label secretd.on-update="` + bad + `"`
		label := "secretd.on-update=" + bad
		// secretd run: refused before docker runs, so no container at all.
		ctr := d.ctrName("ourun")
		r := d.cli("", "run", "--driver", d.driver, "--secret", "ou_a", "--", "-d", "--name", ctr, "--network", "none",
			"--label", d.label(), "--label", label, image, "sleep", "600")
		refused("secretd run --label "+label, r, 125, want)
		if docker(t, "inspect", ctr).code == 0 {
			t.Errorf("secretd run with %s created the container", label)
		}
		// docker run with the declaration in volume-opt (what secretd run
		// makes, written by hand, without the on-update option).
		r = docker(t, "run", "-d", "--network", "none", "--label", d.label(), "--label", label,
			"--mount", "type=volume,volume-driver="+d.driver+",dst=/run/secrets,volume-nocopy,volume-opt=secrets=ou_a", image, "sleep", "600")
		refused("docker run --mount volume-opt=secrets= --label "+label, r, 125, want)
		// A named volume with -o secrets=, used by a container that
		// carries the label.
		vol := d.ctrName("ouvol") + string(rune('a'+i))
		mustDocker(t, "volume", "create", "-d", d.driver, "-o", "secrets=ou_a", vol)
		r = docker(t, "run", "-d", "--network", "none", "--label", d.label(), "--label", label, "-v", vol+":/run/secrets"+d.nocopy(":"), image, "sleep", "600")
		refused("named volume, docker run --label "+label, r, 125, want)
		// The label declaration, refused before this issue too.
		r = docker(t, d.runArgs("ou_a", []string{"-d", "--label", label}, "sleep 600")...)
		refused("label declaration with "+label, r, 125, want)
		// The volume option itself.
		r = docker(t, "volume", "create", "-d", d.driver, "-o", "secrets=ou_a", "-o", "on-update="+bad, vol+"-opt")
		if r.code == 0 || !strings.Contains(r.stderr, `option on-update="`+bad+`"`) {
			t.Errorf("docker volume create -o on-update=%s: %s", bad, r)
		}
	}
	// A container refused at its start (not at a create that copies the
	// image's files, which takes the container with it) stays, created,
	// with its bad label: the named volume's next user is refused too,
	// naming it, until it is removed.
	vol := d.ctrName("ouvol") + "a"
	good := d.ctrName("ougood")
	runGood := func() result {
		return docker(t, "run", "-d", "--name", good, "--network", "none", "--label", d.label(), "--label", "secretd.on-update=signal:SIGHUP",
			"-v", vol+":/run/secrets"+d.nocopy(":"), image, "sh", "-c", `trap 'echo "HUP $(cat /run/secrets/ou_a)"' HUP; echo ready; while true; do sleep 0.05; done`)
	}
	if left := strings.Fields(mustDocker(t, "ps", "-aq", "--filter", "label="+d.label(), "--filter", "volume="+vol)); len(left) > 0 {
		if r := runGood(); r.code == 0 || !strings.Contains(r.stderr, `label secretd.on-update="signal:SIGHUPP"`) {
			t.Errorf("a good label beside a refused container on the same volume: %s", r)
		}
		docker(t, "rm", "-f", good)
		for _, id := range left {
			mustDocker(t, "rm", "-f", id)
		}
	}
	if r := runGood(); r.code != 0 {
		t.Fatalf("docker run with a good label: %s", r)
	}
	if got := mustDocker(t, "volume", "inspect", "-f", "{{.Status.on_update}}", vol); got != "signal:SIGHUP" {
		t.Errorf("docker volume inspect shows on_update %q, want signal:SIGHUP", got)
	}
	waitFor(t, 10*time.Second, "the container to be ready", func() bool { return strings.Contains(docker(t, "logs", good).stdout, "ready") })
	d.mustCLI("ou-a-2", "secret", "update", "ou_a", "-")
	waitFor(t, 10*time.Second, "SIGHUP after the update", func() bool { return strings.Contains(docker(t, "logs", good).stdout, "HUP ou-a-2") })
}

// TestOnUpdateTypoFailsCompose: through compose, a service's mistyped
// secretd.on-update label fails too: `secretd compose` before anything is
// created, plain docker-compose with a secretd volume at the start.
func TestOnUpdateTypoFailsCompose(t *testing.T) {
	t.Parallel()
	requireCompose(t)
	d := startTestDaemon(t)
	d.secrets(t, "ouc_a")
	dir := t.TempDir()
	for i, bad := range badOnUpdates {
		want := `label secretd.on-update="` + bad + `"`
		// secretd compose, with a stack file's secrets.
		stack := filepath.Join(dir, "stack.yml")
		yml := `services:
  web:
    image: ` + image + `
    network_mode: none
    labels: ["` + d.label() + `", "secretd.on-update=` + bad + `"]
    command: ["sleep", "600"]
    secrets: [ouc_a]
secrets:
  ouc_a:
    external: true
`
		if err := os.WriteFile(stack, []byte(yml), 0o644); err != nil {
			t.Fatal(err)
		}
		project := "sdou" + string(rune('a'+i)) + strings.TrimPrefix(d.driver, "secretd-e2e-")
		r := d.cli("", "compose", "--driver", d.driver, "-p", project, "-f", stack, "up", "-d")
		if r.code == 0 || !strings.Contains(r.stderr, `service "web": `+want) {
			t.Errorf("secretd compose up with %s: %s", bad, r)
		}
		if vols := mustDocker(t, "volume", "ls", "-q", "--filter", "driver="+d.driver); vols != "" {
			t.Errorf("secretd compose up with %s created volumes: %s", bad, vols)
		}
		// Plain docker-compose, with a secretd volume of its own.
		plain := filepath.Join(dir, "compose.yml")
		yml = `version: "3.7"
services:
  web:
    image: ` + image + `
    network_mode: none
    labels: ["` + d.label() + `", "secretd.on-update=` + bad + `"]
    command: ["sleep", "600"]
    volumes: ["sec:/run/secrets:nocopy"]
volumes:
  sec:
    driver: ` + d.driver + `
    driver_opts: {secrets: ouc_a}
`
		if err := os.WriteFile(plain, []byte(yml), 0o644); err != nil {
			t.Fatal(err)
		}
		// The volume is made as compose would make it (see
		// TestTodobackendCompose): compose then finds it at once.
		mustDocker(t, "volume", "create", "-d", d.driver, "-o", "secrets=ouc_a",
			"--label", "com.docker.compose.project="+project, "--label", "com.docker.compose.volume=sec", project+"_sec")
		compose := func(args ...string) result {
			return runCmd(t, nil, "", "docker-compose", append([]string{"-p", project, "-f", plain}, args...)...)
		}
		r = compose("up", "-d")
		if r.code == 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("docker-compose up with %s: %s", bad, r)
		}
		if running := mustDocker(t, "ps", "-q", "--filter", "label="+d.label()); running != "" {
			t.Errorf("docker-compose up with %s: containers running: %s", bad, running)
		}
		compose("down", "-t", "1")
		mustDocker(t, "volume", "rm", project+"_sec")
	}
	if m := d.mounts(); len(m) != 0 {
		t.Errorf("mounted after refused starts: %v", m)
	}
}
