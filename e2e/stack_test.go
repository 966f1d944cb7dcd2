package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// stack runs `secretd compose` on the files in testdata/todobackend,
// copied to a temporary project directory, against d.
type stack struct {
	t       *testing.T
	d       *daemon
	dir     string
	project string
	env     []string
	files   []string
}

func newStack(t *testing.T, d *daemon, project string, files ...string) *stack {
	t.Helper()
	dir := t.TempDir()
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join("testdata", "todobackend", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := &stack{t: t, d: d, dir: dir, project: project, files: files,
		env: []string{"SECRETD_HOST=unix://" + d.sock, "IMAGE=" + image, "E2E_LABEL=" + d.label()}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("compose logs:\n%s", s.compose("logs", "--no-color").stdout)
		}
		s.compose("down", "-v", "-t", "1")
	})
	return s
}

// compose runs secretd compose with the stack's files and project name.
func (s *stack) compose(args ...string) result {
	s.t.Helper()
	full := []string{"compose", "--driver", s.d.driver, "-p", s.project}
	for _, f := range s.files {
		full = append(full, "-f", filepath.Join(s.dir, f))
	}
	return runCmd(s.t, s.env, "", binary, append(full, args...)...)
}

func (s *stack) exec(service, cmd string) string {
	s.t.Helper()
	r := runCmd(s.t, nil, "", "docker", "exec", s.project+"_"+service+"_1", "sh", "-c", cmd)
	if r.code != 0 {
		s.t.Fatalf("exec in %s: %s", service, r)
	}
	return strings.TrimSpace(r.stdout)
}

// TestStackFileTodobackend runs seed 000's stack file, its secrets
// sections as written, through `secretd compose up -d` and `down -v` on
// docker-compose v1: what `docker stack deploy` gave each service in
// Swarm, each container finds in /run/secrets.
func TestStackFileTodobackend(t *testing.T) {
	t.Parallel()
	requireCompose(t)
	d := startDaemon(t)
	suffix := strings.TrimPrefix(d.driver, "secretd-e2e-")
	password, rootPassword := "todo-"+suffix, "root-"+suffix
	d.mustCLI(password, "secret", "create", "todobackend_mysql_password", "-")
	d.mustCLI(rootPassword, "secret", "create", "todobackend_mysql_root_password", "-")
	d.mustCLI("", "secret", "create", "--generate", "50", "todobackend_secret_key")

	s := newStack(t, d, "sdstack"+suffix, "stack.yml")
	if r := s.compose("up", "-d"); r.code != 0 {
		t.Fatalf("secretd compose up -d: %s", r)
	}
	// The app reads MYSQL_PASSWORD and SECRET_KEY; the db its two files;
	// Swarm's defaults: root, 0444.
	if got := s.exec("app", "cat /run/secrets/MYSQL_PASSWORD"); got != password {
		t.Errorf("app's MYSQL_PASSWORD is %q", got)
	}
	if got := s.exec("app", "wc -c < /run/secrets/SECRET_KEY"); got != "68" {
		t.Errorf("app's SECRET_KEY is %s bytes, want 68 (base64 of 50 random bytes)", got)
	}
	if got := s.exec("app", "ls /run/secrets | tr '\\n' ' '"); got != "MYSQL_PASSWORD SECRET_KEY" {
		t.Errorf("app's /run/secrets holds %q", got)
	}
	if got := s.exec("db", "cat /run/secrets/mysql_password; echo; cat /run/secrets/mysql_root_password"); got != password+"\n"+rootPassword {
		t.Errorf("db's files hold %q", got)
	}
	if got := s.exec("db", "stat -c '%n %u:%g %a' /run/secrets/mysql_password /run/secrets/mysql_root_password"); got != "/run/secrets/mysql_password 0:0 444\n/run/secrets/mysql_root_password 0:0 444" {
		t.Errorf("db's files: %q", got)
	}
	if got := s.exec("db", "grep ' /run/secrets ' /proc/mounts | cut -d' ' -f3,4 | cut -d, -f1"); got != "tmpfs ro" {
		t.Errorf("db's /run/secrets is mounted %q, want a read-only tmpfs", got)
	}

	if r := s.compose("down", "-v", "-t", "1"); r.code != 0 {
		t.Fatalf("secretd compose down -v: %s", r)
	}
	waitFor(t, 10*time.Second, "the stack's mounts to go", func() bool { return len(d.mounts()) == 0 })
	if vs := strings.Fields(docker(t, "volume", "ls", "-q", "--filter", "driver="+d.driver).stdout); len(vs) != 0 {
		t.Errorf("volumes left after down -v: %v", vs)
	}
	// External secrets are the user's: down never removes them.
	if out := d.mustCLI("", "secret", "ls", "-q"); len(strings.Fields(out)) != 3 {
		t.Errorf("secrets after down -v: %q", out)
	}
}

// TestStackFileImportsAndOptions: uid, gid and mode of the long syntax
// are honoured; file: and environment: secrets are imported as
// PROJECT_KEY, a changed file reaches the running container after a second
// up without a restart, and only down --remove-secrets removes them.
func TestStackFileImportsAndOptions(t *testing.T) {
	t.Parallel()
	requireCompose(t)
	d := startDaemon(t)
	suffix := strings.TrimPrefix(d.driver, "secretd-e2e-")
	password := "todo-" + suffix
	d.mustCLI(password, "secret", "create", "todobackend_mysql_password", "-")

	project := "sdopts" + suffix
	s := newStack(t, d, project, "options.yml")
	keyFile := filepath.Join(s.dir, "site.key")
	if err := os.WriteFile(keyFile, []byte("key-one-"+suffix), 0o600); err != nil {
		t.Fatal(err)
	}
	s.env = append(s.env, "API_TOKEN=token-"+suffix)
	if r := s.compose("up", "-d"); r.code != 0 {
		t.Fatalf("secretd compose up -d: %s", r)
	}
	// The values reach the containers only: not the translated file
	// compose is given, not secretd compose's output.
	cfg := s.compose("config")
	for _, v := range []string{"key-one-" + suffix, "token-" + suffix} {
		if strings.Contains(cfg.stdout+cfg.stderr, v) {
			t.Errorf("secretd compose config shows a secret's value:\n%s", cfg)
		}
	}
	want := "/run/secrets/api_token 0:0 444\n/run/secrets/mysql_password 999:999 400\n/run/secrets/tls/site.key 0:101 440"
	if got := s.exec("db", "stat -c '%n %u:%g %a' /run/secrets/api_token /run/secrets/mysql_password /run/secrets/tls/site.key"); got != want {
		t.Errorf("db's files:\n%s\nwant\n%s", got, want)
	}
	if got := s.exec("db", "cat /run/secrets/tls/site.key; echo; cat /run/secrets/api_token"); got != "key-one-"+suffix+"\ntoken-"+suffix {
		t.Errorf("imported secrets hold %q", got)
	}
	ls := d.mustCLI("", "secret", "ls", "--format", "{{.Name}} {{.Labels}}")
	for _, name := range []string{project + "_site_key", project + "_api_token"} {
		if !strings.Contains(ls, name+" com.docker.stack.namespace="+project) {
			t.Errorf("secret %s not imported with the stack's label:\n%s", name, ls)
		}
	}

	// A second up with the same sources stores nothing new; with a changed
	// file, the running container sees the new content in place.
	if r := s.compose("up", "-d"); r.code != 0 || strings.Contains(r.stderr, "Updating secret") {
		t.Fatalf("second up, nothing changed: %s", r)
	}
	started := s.exec("db", "cat /proc/1/stat | cut -d' ' -f22")
	if err := os.WriteFile(keyFile, []byte("key-two-"+suffix), 0o600); err != nil {
		t.Fatal(err)
	}
	r := s.compose("up", "-d")
	if r.code != 0 || !strings.Contains(r.stderr, "Updating secret "+project+"_site_key to version 2") {
		t.Fatalf("up after the file changed: %s", r)
	}
	if got := s.exec("db", "cat /run/secrets/tls/site.key"); got != "key-two-"+suffix {
		t.Errorf("after the file changed, the container reads %q", got)
	}
	if again := s.exec("db", "cat /proc/1/stat | cut -d' ' -f22"); again != started {
		t.Errorf("the container restarted (start time %s, then %s); rotation should reach it in place", started, again)
	}

	// down keeps the imported secrets; down --remove-secrets removes them
	// and leaves the external one.
	if r := s.compose("down", "-t", "1"); r.code != 0 {
		t.Fatalf("down: %s", r)
	}
	if ls := d.mustCLI("", "secret", "ls", "-q"); len(strings.Fields(ls)) != 3 {
		t.Errorf("after down, secrets: %q", ls)
	}
	if r := s.compose("down", "-v", "-t", "1", "--remove-secrets"); r.code != 0 {
		t.Fatalf("down --remove-secrets: %s", r)
	}
	if ls := d.mustCLI("", "secret", "ls", "--format", "{{.Name}}"); ls != "todobackend_mysql_password" {
		t.Errorf("after down --remove-secrets, secrets: %q", ls)
	}
}

// TestStackFileDriverSecret: a driver: secret in the stack file is created
// by secretd compose with its driver and driver_opts, read from the source
// by the container, left alone by a second up, and removed by down
// --remove-secrets.
func TestStackFileDriverSecret(t *testing.T) {
	t.Parallel()
	requireCompose(t)
	d := startDaemon(t)
	suffix := strings.TrimPrefix(d.driver, "secretd-e2e-")
	project := "sddrv" + suffix
	s := newStack(t, d, project, "driver.yml")
	tokenFile := filepath.Join(s.dir, "token")
	value := "from-the-source-" + suffix
	if err := os.WriteFile(tokenFile, []byte(value), 0o600); err != nil {
		t.Fatal(err)
	}
	s.env = append(s.env, "TOKEN_FILE="+tokenFile)
	r := s.compose("up", "-d")
	if r.code != 0 || !strings.Contains(r.stderr, "Creating secret "+project+"_db_token with driver shell") {
		t.Fatalf("secretd compose up -d: %s", r)
	}
	if got := s.exec("db", "cat /run/secrets/db_token"); got != value {
		t.Errorf("the container reads %q, want the lookup's output", got)
	}
	info := d.mustCLI("", "secret", "inspect", "--format", "{{.Source.Driver}} {{.Source.OptionKeys}} {{.Spec.Labels}}", project+"_db_token")
	if info != "shell [lookup] map[com.docker.stack.namespace:"+project+" tier:db]" {
		t.Errorf("secret inspect: %s", info)
	}
	if r := s.compose("up", "-d"); r.code != 0 || strings.Contains(r.stderr, "Creating secret") {
		t.Errorf("second up: %s", r)
	}
	if r := s.compose("down", "-v", "-t", "1", "--remove-secrets"); r.code != 0 || !strings.Contains(r.stderr, "Removing secret "+project+"_db_token") {
		t.Fatalf("down --remove-secrets: %s", r)
	}
	if ls := d.mustCLI("", "secret", "ls", "-q"); ls != "" {
		t.Errorf("after down --remove-secrets, secrets: %q", ls)
	}
}

func requireCompose(t *testing.T) {
	t.Helper()
	if docker(t, "compose", "version").code != 0 {
		if r := runCmd(t, nil, "", "docker-compose", "version", "--short"); r.code != 0 {
			t.Skip("neither docker compose nor docker-compose is installed")
		}
	}
}

// TestStackFileBadInput: a broken file gets the library's own message, a
// missing external secret (every one of them named) and a target or mode
// secretd cannot serve are refused before anything is created.
func TestStackFileBadInput(t *testing.T) {
	t.Parallel()
	requireCompose(t)
	d := startDaemon(t)
	suffix := strings.TrimPrefix(d.driver, "secretd-e2e-")
	d.mustCLI("x", "secret", "create", "todobackend_mysql_password", "-")
	project := "sdbad" + suffix
	svc := func(entries string) string {
		return "services:\n  db:\n    image: " + image + "\n    network_mode: none\n    labels: [\"" + d.label() + "\"]\n    command: [sleep, \"60\"]\n    secrets:\n" + entries +
			"secrets:\n  todobackend_mysql_password:\n    external: true\n  a_missing:\n    external: true\n  b_missing:\n    external: true\n    name: prod_b\n"
	}
	for _, tc := range []struct {
		name, yml, want string
	}{
		{"yaml error", "services:\n  db:\n    image: [\n", "yaml: "},
		{"undefined secret", svc("      - nosuch\n"), `service "db" refers to undefined secret nosuch`},
		{"missing external secrets", svc("      - todobackend_mysql_password\n      - a_missing\n      - b_missing\n"),
			"Error: external secrets not found in secretd: a_missing, prod_b: create them with 'secretd secret create NAME FILE|-' first; nothing was started"},
		{"escaping target", svc("      - source: todobackend_mysql_password\n        target: ../etc/shadow\n"), `target "../etc/shadow" must not contain ".."`},
		{"bad mode", svc("      - source: todobackend_mysql_password\n        mode: 01777\n"), "mode 01777 is not a permission mode: use 0000 to 0777, such as 0400"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "compose.yml")
			if err := os.WriteFile(file, []byte(tc.yml), 0o644); err != nil {
				t.Fatal(err)
			}
			r := runCmd(t, []string{"SECRETD_HOST=unix://" + d.sock}, "", binary, "compose", "--driver", d.driver, "-p", project, "-f", file, "up", "-d")
			if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("secretd compose up: %s\nwant an error containing %q", r, tc.want)
			}
			if ps := docker(t, "ps", "-aq", "--filter", "label=com.docker.compose.project="+project).stdout; ps != "" {
				t.Errorf("containers created: %s", ps)
			}
			if vs := docker(t, "volume", "ls", "-q", "--filter", "driver="+d.driver).stdout; vs != "" {
				t.Errorf("volumes created: %s", vs)
			}
		})
	}
	if ls := d.mustCLI("", "secret", "ls", "--format", "{{.Name}}"); ls != "todobackend_mysql_password" {
		t.Errorf("secrets after refusals: %q", ls)
	}
}
