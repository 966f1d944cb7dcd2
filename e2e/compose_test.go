package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/secretd/secretd/secretdtest"
)

// todobackendVolumes reads the secretd volumes of the todobackend example
// (deploy/compose/todobackend/docker-compose.yml): name → declaration. The
// test runs these declarations as written.
func todobackendVolumes(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(deployRoot(t), "deploy", "compose", "todobackend", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^  ([a-z-]+):\n    driver: secretd\n    driver_opts:\n      secrets: "([^"]+)"$`)
	out := map[string]string{}
	for _, m := range re.FindAllStringSubmatch(string(data), -1) {
		out[m[1]] = m[2]
	}
	if out["db-secrets"] == "" || out["app-secrets"] == "" {
		t.Fatalf("the todobackend example declares no db-secrets and app-secrets volumes of driver secretd: %v", out)
	}
	return out
}

// todobackendCompose is the example with local stand-ins for mysql:8 and
// the app image, no network, and the test daemon's driver.
const todobackendCompose = `version: "3.7"
services:
  db:
    image: %[1]s
    command: ["sh", "/standin/db.sh"]
    network_mode: none
    stop_grace_period: 5s
    labels: [%[2]s]
    environment:
      MYSQL_DATABASE: todobackend
      MYSQL_USER: todo
      MYSQL_PASSWORD_FILE: /run/secrets/MYSQL_PASSWORD
      MYSQL_ROOT_PASSWORD_FILE: /run/secrets/MYSQL_ROOT_PASSWORD
    volumes:
      - db-secrets:/run/secrets:nocopy
  app:
    image: %[1]s
    command: ["sh", "/standin/app.sh"]
    network_mode: none
    stop_grace_period: 5s
    labels: [%[2]s]
    depends_on: [db]
    environment:
      MYSQL_HOST: db
      MYSQL_USER: todo
      # The fallback must lose to the files.
      MYSQL_PASSWORD: from-the-environment
      SECRET_KEY: from-the-environment
    volumes:
      - app-secrets:/run/secrets:nocopy
volumes:
  db-secrets:
    driver: %[3]s
    driver_opts:
      secrets: %[4]q
  app-secrets:
    driver: %[3]s
    driver_opts:
      secrets: %[5]q
`

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestComposeTodobackend runs the todobackend example's secret
// declarations with docker-compose against a test daemon: the database and
// the app each find their passwords in /run/secrets, the app's lookup
// prefers them to its environment, and `down -v` leaves no mount behind.
func TestComposeTodobackend(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Skip("docker-compose not installed")
	}
	vols := todobackendVolumes(t)
	d := startDaemon(t)
	suffix := strings.TrimPrefix(d.driver, "secretd-e2e-")

	standin := filepath.Join(deployRoot(t), "deploy", "compose", "todobackend", "standin")
	files := map[string][]byte{}
	for _, f := range []string{"db.sh", "app.sh"} {
		b, err := os.ReadFile(filepath.Join(standin, f))
		if err != nil {
			t.Fatal(err)
		}
		files["standin/"+f] = b
	}
	img := "secretd-e2e-todobackend:" + suffix
	t.Cleanup(func() { removeImage(t, img) })
	if err := secretdtest.BusyboxImage([]string{"docker"}, img, files); err != nil {
		t.Fatal(err)
	}

	// Known values through stdin, so the test can tell what each container
	// got (the API never gives a value back); the key is generated, as the
	// example says, and only its length is known.
	password, rootPassword := "todo-"+suffix, "root-"+suffix
	d.mustCLI(password, "secret", "create", "todobackend_mysql_password", "-")
	d.mustCLI(rootPassword, "secret", "create", "todobackend_mysql_root_password", "-")
	d.mustCLI("", "secret", "create", "--generate", "50", "todobackend_secret_key")

	dir := t.TempDir()
	file := filepath.Join(dir, "docker-compose.yml")
	yml := fmt.Sprintf(todobackendCompose, img, d.label(), d.driver, vols["db-secrets"], vols["app-secrets"])
	if err := os.WriteFile(file, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	project := "sdc" + suffix
	compose := func(args ...string) result {
		return runCmd(t, nil, "", "docker-compose", append([]string{"-p", project, "-f", file}, args...)...)
	}
	down := false
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("docker-compose logs:\n%s", compose("logs", "--no-color").stdout)
		}
		if !down {
			// Without -v: compose would remove volumes it may never have
			// created, and removing an unknown name is what the engine
			// makes slow (below). The daemon's cleanup removes the
			// volumes of its driver by listing them.
			compose("down", "-t", "2")
		}
	})

	// The volumes are created as compose would (same names, driver,
	// options and labels) before `up`, which then finds them. Left to
	// itself, `up` first inspects each name, and for a name it does not
	// know the engine asks every volume driver it has ever seen, in turn,
	// 30 s for each whose socket is gone: a shared engine that ran many
	// test daemons (one driver name each) then takes minutes per name.
	for name, decl := range vols {
		mustDocker(t, "volume", "create", "-d", d.driver, "-o", "secrets="+decl,
			"--label", "com.docker.compose.project="+project, "--label", "com.docker.compose.volume="+name,
			project+"_"+name)
	}

	start := time.Now()
	if r := compose("up", "-d"); r.code != 0 {
		t.Fatalf("docker-compose up: %s", r)
	}
	var logs string
	waitFor(t, 30*time.Second, "both services to report", func() bool {
		logs = compose("logs", "--no-color").stdout
		return strings.Contains(logs, "db: ready") && strings.Contains(logs, "app: check")
	})
	t.Logf("docker-compose up to both check lines: %s", time.Since(start).Round(time.Millisecond))

	line := func(prefix string) string {
		for _, l := range strings.Split(logs, "\n") {
			if i := strings.Index(l, prefix); i >= 0 {
				return l[i:]
			}
		}
		return ""
	}
	db := line("db: ready")
	wantDB := fmt.Sprintf("db: ready database=todobackend user=todo password_sha256=%s root_password_sha256=%s files=/run/secrets/MYSQL_PASSWORD:999:999:400 /run/secrets/MYSQL_ROOT_PASSWORD:999:999:400",
		sha256hex(password), sha256hex(rootPassword))
	if strings.TrimSpace(db) != wantDB {
		t.Errorf("db reported\n%s\nwant\n%s", db, wantDB)
	}
	app := line("app: check")
	m := regexp.MustCompile(`^app: check user=todo host=db mysql_password_sha256=([0-9a-f]{64}) secret_key_sha256=([0-9a-f]{64}) secret_key_length=(\d+)\s*$`).FindStringSubmatch(app)
	switch {
	case m == nil:
		t.Errorf("app reported %q", app)
	case m[1] != sha256hex(password):
		t.Errorf("app's MYSQL_PASSWORD is not the secret (the environment fallback won?): %s", app)
	case m[2] == sha256hex("from-the-environment"):
		t.Errorf("app's SECRET_KEY came from the environment: %s", app)
	case m[3] != "68":
		t.Errorf("app's SECRET_KEY is %s bytes, want 68 (base64 of 50 random bytes)", m[3])
	}
	for _, s := range []string{password, rootPassword} {
		if strings.Contains(logs, s) {
			t.Errorf("a secret value reached the compose logs")
		}
	}
	if n := len(d.mounts()); n != 2 {
		t.Errorf("%d tmpfs mounts while the stack runs, want 2 (one per service)", n)
	}

	// The same app without the volume falls back to its environment.
	fallback := "sdc-fallback-" + suffix
	mustDocker(t, "run", "-d", "--pull", "never", "--network", "none", "--name", fallback, "--label", d.label(),
		"-e", "MYSQL_PASSWORD=from-the-environment", "-e", "SECRET_KEY=k", img, "sh", "/standin/app.sh")
	var out string
	waitFor(t, 10*time.Second, "the app's check line without secrets", func() bool {
		out = docker(t, "logs", fallback).stdout
		return strings.Contains(out, "app: check")
	})
	mustDocker(t, "rm", "-f", fallback)
	if !strings.Contains(out, "mysql_password_sha256="+sha256hex("from-the-environment")) || !strings.Contains(out, "secret_key_length=1") {
		t.Errorf("app without secrets: %s", out)
	}

	r := compose("down", "-v", "-t", "5")
	if r.code != 0 {
		t.Fatalf("docker-compose down -v: %s", r)
	}
	down = true
	waitFor(t, 10*time.Second, "the stack's mounts to go", func() bool { return len(d.mounts()) == 0 })
	if vs := strings.Fields(docker(t, "volume", "ls", "-q", "--filter", "driver="+d.driver).stdout); len(vs) != 0 {
		t.Errorf("volumes left after down -v: %v", vs)
	}
}
