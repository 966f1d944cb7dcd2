package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// dockerConfig runs the stock docker CLI's config commands with DOCKER_HOST
// at secretd.
func (d *daemon) dockerConfig(stdin string, args ...string) result {
	d.t.Helper()
	return runCmd(d.t, []string{"DOCKER_HOST=unix://" + d.sock}, stdin, "docker", append([]string{"config"}, args...)...)
}

// TestDockerConfigCLI: the stock `docker config` works against secretd's
// socket as against a Swarm manager: create from stdin with labels and a
// template driver, ls with filters and --format, inspect showing the data,
// rm refused while a container uses the config, and Swarm's size rule. A
// secret may share a config's name.
func TestDockerConfigCLI(t *testing.T) {
	t.Parallel()
	d := startTestDaemon(t)
	site := "server {\n    listen 443 ssl;\n}\n"
	r := d.dockerConfig(site, "create", "--label", "app=nginx", "site.conf", "-")
	if r.code != 0 {
		t.Fatalf("docker config create: %s", r)
	}
	id := strings.TrimSpace(r.stdout)
	if r := d.dockerConfig(`host={{ .Task.Name }}`, "create", "--template-driver", "golang", "app.ini", "-"); r.code != 0 {
		t.Fatalf("docker config create --template-driver golang: %s", r)
	}
	if r := d.dockerSecret("not the config", "create", "site.conf", "-"); r.code != 0 {
		t.Fatalf("a secret of the config's name: %s", r)
	}
	if r := d.dockerConfig("", "ls", "--format", "{{.ID}} {{.Name}}", "--filter", "label=app=nginx"); r.code != 0 || strings.TrimSpace(r.stdout) != id+" site.conf" {
		t.Errorf("docker config ls --filter: %s", r)
	}
	if r := d.dockerConfig("", "ls", "--format", "{{.Name}}"); r.code != 0 || strings.Fields(r.stdout)[0] != "app.ini" || len(strings.Fields(r.stdout)) != 2 {
		t.Errorf("docker config ls: %s", r)
	}
	if r := d.dockerConfig("", "inspect", "--format", `{{printf "%s" .Spec.Data}}`, "site.conf"); r.code != 0 || r.stdout != site+"\n" {
		t.Errorf("docker config inspect shows the data as Swarm does: %s", r)
	}
	if r := d.dockerConfig("", "inspect", "--pretty", "app.ini"); r.code != 0 || !strings.Contains(r.stdout, "host={{ .Task.Name }}") {
		t.Errorf("docker config inspect --pretty: %s", r)
	}
	if r := d.dockerConfig("", "inspect", "--format", "{{.Spec.Templating.Name}}", "app.ini"); r.code != 0 || strings.TrimSpace(r.stdout) != "golang" {
		t.Errorf("the template driver: %s", r)
	}
	if got := d.mustCLI("", "secret", "ls", "--format", "{{.Name}}"); got != "site.conf" {
		t.Errorf("secrets: %q", got)
	}
	if got := d.mustCLI("", "config", "ls", "--format", "{{.Name}} {{.Template}}"); got != "app.ini golang\nsite.conf" {
		t.Errorf("secretd config ls: %q", got)
	}

	// In use: rm is refused naming the container, and the secret of the
	// same name is not in use.
	ctr := d.ctrName("cfg-user")
	if r := runCmd(t, []string{"SECRETD_HOST=unix://" + d.sock}, "", binary, "run", "--driver", d.driver,
		"--config", "src=site.conf,target=/run/secrets/site.conf", "--", "-d", "--name", ctr, "--network", "none", "--label", d.label(), image, "sh", "-c", sleeper); r.code != 0 {
		t.Fatalf("secretd run --config: %s", r)
	}
	if got := execSh(t, ctr, "cat /run/secrets/site.conf"); got+"\n" != site {
		t.Errorf("the container reads %q", got)
	}
	if r := d.dockerConfig("", "rm", "site.conf"); r.code == 0 || !strings.Contains(r.stderr, "config 'site.conf' is in use by the following container: "+ctr) {
		t.Errorf("docker config rm while in use: %s", r)
	}
	if ps := d.mustCLI("", "ps", "--format", "{{.Secret}} {{.Target}}", ctr); ps != "config:site.conf site.conf" {
		t.Errorf("secretd ps: %q", ps)
	}
	if r := d.dockerSecret("", "rm", "site.conf"); r.code != 0 {
		t.Errorf("docker secret rm of the secret that shares the in-use config's name: %s", r)
	}
	// A rotation in place reaches the running container.
	d.mustCLI("server { listen 8443 ssl; }\n", "config", "update", "site.conf", "-")
	if got := execSh(t, ctr, "cat /run/secrets/site.conf"); got != "server { listen 8443 ssl; }" {
		t.Errorf("after config update: %q", got)
	}
	mustDocker(t, "rm", "-f", "-v", ctr)
	if r := d.dockerConfig("", "rm", "site.conf", "app.ini"); r.code != 0 {
		t.Errorf("docker config rm: %s", r)
	}

	// Swarm's rules, with nothing stored.
	big := strings.Repeat("c", 1000*1024)
	if r := d.dockerConfig(big, "create", "big", "-"); r.code == 0 || !strings.Contains(r.stderr, "config data must be larger than 0 and less than 1024000 bytes") {
		t.Errorf("a config of 1000 KiB: %s", r)
	}
	if r := d.dockerConfig(big[1:], "create", "big", "-"); r.code != 0 {
		t.Errorf("a config of 1000 KiB - 1 byte: %s", r)
	}
	if r := d.dockerConfig(`{{ vault "x" }}`, "create", "--template-driver", "golang", "bad", "-"); r.code == 0 || !strings.Contains(r.stderr, `function "vault" not defined`) {
		t.Errorf("a template with an unknown function: %s", r)
	}
	if got := d.mustCLI("", "config", "ls", "--format", "{{.Name}}"); got != "big" {
		t.Errorf("configs after the refusals: %q", got)
	}
}

// TestRenderedDSN: `docker secret create --template-driver golang` makes a
// DSN from a secret; a container reads it rendered; a rotation of the
// password renders it again while the container runs; an update that would
// not render, a missing secret and a loop are refused and change nothing.
func TestRenderedDSN(t *testing.T) {
	t.Parallel()
	d := startTestDaemon(t)
	if r := d.dockerSecret("hunter2", "create", "db_password", "-"); r.code != 0 {
		t.Fatal(r)
	}
	if r := d.dockerSecret(`dsn=app:{{ secret "db_password" }}@db`, "create", "--template-driver", "golang", "dsn", "-"); r.code != 0 {
		t.Fatalf("docker secret create --template-driver golang: %s", r)
	}
	d.mustCLI(`I am {{ .Task.Name }}`, "config", "create", "--template-driver", "golang", "who", "-")
	ctr := d.ctrName("dsn")
	run := func(name string, specs ...string) result {
		args := []string{"run", "--driver", d.driver}
		for _, s := range specs {
			args = append(args, "--secret", s)
		}
		args = append(args, "--", "-d", "--name", name, "--network", "none", "--label", d.label(), image, "sh", "-c", sleeper)
		return runCmd(t, []string{"SECRETD_HOST=unix://" + d.sock}, "", binary, args...)
	}
	if r := run(ctr, "db_password", "dsn"); r.code != 0 {
		t.Fatalf("secretd run: %s", r)
	}
	if got := execSh(t, ctr, "cat /run/secrets/dsn"); got != "dsn=app:hunter2@db" {
		t.Fatalf("the rendered DSN: %q", got)
	}
	if got := execSh(t, ctr, "grep ' /run/secrets ' /proc/mounts | cut -d' ' -f3"); got != "tmpfs" {
		t.Errorf("the rendering is on %q, want tmpfs", got)
	}
	// A container declaring by labels, secrets and a config, whose
	// on-update action is a signal.
	sig := d.ctrName("dsn-sig")
	mustDocker(t, "run", "-d", "--name", sig, "--network", "none", "--label", d.label(),
		"--label", "secretd.secrets=db_password;dsn", "--label", "secretd.configs=source=who,target=who",
		"--label", "secretd.on-update=signal:SIGHUP", "--mount", "type=volume,volume-driver="+d.driver+",dst=/run/secrets,volume-nocopy",
		image, "sh", "-c", `trap 'echo "HUP $(cat /run/secrets/dsn)"' HUP; echo "ready $(cat /run/secrets/who)"; while true; do sleep 0.05; done`)
	waitFor(t, 10*time.Second, "the signalled container ready", func() bool {
		return strings.Contains(docker(t, "logs", sig).stdout, "ready I am "+sig)
	})
	// The rendering follows the rotation, in place, while it runs, and
	// the container's on-update action runs.
	d.mustCLI("s3cret", "secret", "update", "db_password", "-")
	if got := execSh(t, ctr, "cat /run/secrets/dsn"); got != "dsn=app:s3cret@db" {
		t.Errorf("after the rotation: %q", got)
	}
	waitFor(t, 10*time.Second, "SIGHUP after the rotation, with the new rendering", func() bool {
		return strings.Contains(docker(t, "logs", sig).stdout, "HUP dsn=app:s3cret@db")
	})
	mustDocker(t, "rm", "-f", "-v", sig)
	if ps := d.mustCLI("", "ps", "--format", "{{.Secret}} {{.Reads}}", "--filter", "secret=dsn", ctr); ps != "dsn secret:db_password@2" {
		t.Errorf("secretd ps: %q", ps)
	}
	// A template update that would not render is refused: nothing stored,
	// the container keeps its file.
	r := d.cli(`{{ secret "nope" }}`, "secret", "update", "dsn", "-")
	if r.code == 0 || !strings.Contains(r.stderr, "secret 'dsn' was not updated") || !strings.Contains(r.stderr, ctr) || !strings.Contains(r.stderr, `reads secret "nope"`) {
		t.Errorf("an update that would not render: %s", r)
	}
	if v := d.mustCLI("", "secret", "inspect", "--format", "{{.CurrentVersion}}", "dsn"); v != "1" {
		t.Errorf("the refused update stored version %s", v)
	}
	if got := execSh(t, ctr, "cat /run/secrets/dsn"); got != "dsn=app:s3cret@db" {
		t.Errorf("after the refused update: %q", got)
	}
	// A container that does not declare what its template reads does not
	// start, naming the template and what it misses.
	r = run(d.ctrName("dsn-missing"), "dsn")
	if r.code == 0 || !strings.Contains(r.stderr, `template secret 'dsn' (target dsn) reads secret "db_password", but the container declares no secret with that target`) {
		t.Errorf("docker run without the secret the template reads: %s", r)
	}
	if strings.Contains(r.stderr, "s3cret") || strings.Contains(d.log(), "s3cret") {
		t.Error("the secret reached an error or the log")
	}
	// Templates reading each other in a loop.
	d.mustCLI(`{{ secret "b" }}`, "secret", "create", "--template-driver", "golang", "a", "-")
	d.mustCLI(`{{ secret "a" }}`, "secret", "create", "--template-driver", "golang", "b", "-")
	r = run(d.ctrName("loop"), "a", "b")
	if r.code == 0 || !strings.Contains(r.stderr, "templates read each other in a loop: secret 'a' reads secret 'b' reads secret 'a'") {
		t.Errorf("a loop: %s", r)
	}
	// A template whose rendering would not fit a secret (under 500 KiB):
	// the start fails naming it, and nothing of it is left mounted.
	d.mustCLI(strings.Repeat("k", 300*1024), "secret", "create", "big", "-")
	d.mustCLI(`{{ secret "big" }}{{ secret "big" }}`, "secret", "create", "--template-driver", "golang", "twice", "-")
	before := len(containerMounts(t, d.mountRoot))
	r = run(d.ctrName("twice"), "big", "twice")
	if r.code == 0 || !strings.Contains(r.stderr, "template secret 'twice' (target twice) renders to more than a secret may hold") {
		t.Errorf("a rendering over the cap: %s", r)
	}
	if after := len(containerMounts(t, d.mountRoot)); after != before {
		t.Errorf("the refused start left %d mounts under the mount root, had %d", after, before)
	}
	mustDocker(t, "rm", "-f", "-v", ctr)
}

// TestNginxConfig runs seed 004's nginx walkthrough with site.conf as a
// config, as the seed says it belongs: `secretd run` puts it beside the
// image's default.conf at its absolute target, and site.conf is a template
// that names the service.
func TestNginxConfig(t *testing.T) {
	t.Parallel()
	d := startTestDaemon(t)
	img := nginxImage(t, d)
	d.mustCLI("KEY-1", "secret", "create", "site.key", "-")
	d.mustCLI("CRT-1", "secret", "create", "site.crt", "-")
	site := "server {\n    listen 443 ssl;\n    server_name {{ .Task.Name }};\n    ssl_certificate /run/secrets/site.crt;\n    ssl_certificate_key /run/secrets/site.key;\n}\n"
	d.mustCLI(site, "config", "create", "--template-driver", "golang", "site.conf", "-")
	ctr := d.ctrName("nginx-config")
	r := runCmd(t, []string{"SECRETD_HOST=unix://" + d.sock}, "", binary, "run", "--driver", d.driver,
		"--secret", "site.key", "--secret", "site.crt", "--config", "src=site.conf,target=/etc/nginx/conf.d/site.conf",
		"--", "-d", "--name", ctr, "--network", "none", "--label", d.label(), img, "sh", "-c", sleeper)
	if r.code != 0 {
		t.Fatalf("secretd run: %s", r)
	}
	if got := execSh(t, ctr, "ls /etc/nginx/conf.d | tr '\\n' ' '"); strings.TrimSpace(got) != "default.conf site.conf" {
		t.Errorf("/etc/nginx/conf.d holds %q", got)
	}
	want := strings.ReplaceAll(site, "{{ .Task.Name }}", ctr)
	if got := execSh(t, ctr, "cat /etc/nginx/conf.d/site.conf"); got+"\n" != want {
		t.Errorf("site.conf holds %q, want %q", got, want)
	}
	if got := execSh(t, ctr, "cat /run/secrets/site.key /run/secrets/site.crt"); got != "KEY-1CRT-1" {
		t.Errorf("/run/secrets holds %q", got)
	}
	mustDocker(t, "rm", "-f", "-v", ctr)
}

// TestStackFileConfigs: `secretd compose` translates a stack file's
// configs (file:, content:, environment:, external: true, the long syntax
// with uid, gid and mode) and template_driver: golang, and runs seed 004's
// nginx walkthrough with site.conf as a config, through docker-compose.
func TestStackFileConfigs(t *testing.T) {
	t.Parallel()
	requireCompose(t)
	d := startTestDaemon(t)
	img := nginxImage(t, d)
	d.mustCLI("KEY-1", "secret", "create", "site.key", "-")
	d.mustCLI("hunter2", "secret", "create", "db_password", "-")
	d.mustCLI("shared", "config", "create", "shared.conf", "-")
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
      - db_password
      - dsn
    configs:
      - source: site.conf
        target: /etc/nginx/conf.d/site.conf
      - source: banner
        target: /run/secrets/banner.txt
        uid: "101"
        gid: "102"
        mode: 0440
      - shared.conf
      - source: region
        target: /run/secrets/region
secrets:
  site.key:
    external: true
  db_password:
    external: true
  dsn:
    environment: DSN_TEMPLATE
    template_driver: golang
configs:
  site.conf:
    file: ./site.conf
  banner:
    content: "hello from {{ .Service.Name }}"
    template_driver: golang
  shared.conf:
    external: true
  region:
    environment: REGION
`
	for name, data := range map[string]string{"compose.yml": yml, "site.conf": "server { listen 443 ssl; }"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	project := "sdcfg" + strings.TrimPrefix(d.driver, "secretd-e2e-")
	env := []string{"SECRETD_HOST=unix://" + d.sock, `DSN_TEMPLATE=dsn=app:{{ secret "db_password" }}@db`, "REGION=eu-west"}
	compose := func(args ...string) result {
		return runCmd(t, env, "", binary,
			append([]string{"compose", "--driver", d.driver, "-p", project, "-f", filepath.Join(dir, "compose.yml")}, args...)...)
	}
	t.Cleanup(func() { compose("down", "-v", "-t", "1", "--remove-secrets") })
	if r := compose("up", "-d"); r.code != 0 {
		t.Fatalf("secretd compose up: %s", r)
	}
	ctr := project + "_nginx_1"
	checks := map[string]string{
		"ls /etc/nginx/conf.d | tr '\\n' ' '":        "default.conf site.conf",
		"cat /etc/nginx/conf.d/site.conf":            "server { listen 443 ssl; }",
		"cat /run/secrets/banner.txt":                "hello from " + project + "_nginx",
		"stat -c '%u:%g %a' /run/secrets/banner.txt": "101:102 440",
		"cat /shared.conf":                           "shared",
		"cat /run/secrets/region":                    "eu-west",
		"cat /run/secrets/dsn":                       "dsn=app:hunter2@db",
		"cat /run/secrets/site.key":                  "KEY-1",
	}
	for cmd, want := range checks {
		if got := strings.TrimSpace(execSh(t, ctr, cmd)); got != want {
			t.Errorf("%s: %q, want %q", cmd, got, want)
		}
	}
	if got := d.mustCLI("", "config", "ls", "--format", "{{.Name}}", "--filter", "label=com.docker.stack.namespace="+project); got != project+"_banner\n"+project+"_region\n"+project+"_site.conf" {
		t.Errorf("imported configs: %q", got)
	}
	// A rotation of the password renders the DSN again in the running
	// service; a second up with the same sources changes nothing.
	d.mustCLI("s3cret", "secret", "update", "db_password", "-")
	waitFor(t, 5*time.Second, "the DSN rendered again", func() bool {
		return execSh(t, ctr, "cat /run/secrets/dsn") == "dsn=app:s3cret@db"
	})
	if r := compose("up", "-d"); r.code != 0 || strings.Contains(r.stderr, "Updating") {
		t.Errorf("second up: %s", r)
	}
	if r := compose("down", "-v", "-t", "1", "--remove-secrets"); r.code != 0 {
		t.Fatalf("down: %s", r)
	}
	if got := d.mustCLI("", "config", "ls", "--format", "{{.Name}}"); got != "shared.conf" {
		t.Errorf("configs after down --remove-secrets: %q (the external one stays)", got)
	}
}
