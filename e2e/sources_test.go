package e2e

// External secret sources (issue 16), with real parts: pass with a
// throwaway GPG key, age, the shell driver's host configuration, and a
// Swarm-style secret-driver plugin built with go-plugins-helpers.

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/secrets"
)

// needTools skips a test whose tools `make deps` installs.
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (make deps installs it): %v", tool, err)
		}
	}
}

// runTool runs a host tool and fails the test unless it succeeds.
func runTool(t *testing.T, env []string, stdin, name string, args ...string) string {
	t.Helper()
	r := runCmd(t, env, stdin, name, args...)
	if r.code != 0 {
		t.Fatalf("%s %s: %s", name, strings.Join(args, " "), r)
	}
	return r.stdout
}

// writeFile writes a test file, failing the test on error.
func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// noSecrets checks that a refused create left no secret behind.
func noSecrets(t *testing.T, d *daemon) {
	t.Helper()
	if out := d.mustCLI("", "secret", "ls", "-q"); out != "" {
		t.Errorf("a refused create left secrets behind: %q", out)
	}
}

// refusedCreate runs a secretd create that must fail with msg and change nothing.
func refusedCreate(t *testing.T, d *daemon, stdin, msg string, args ...string) {
	t.Helper()
	r := d.cli(stdin, append([]string{"secret", "create"}, args...)...)
	if r.code == 0 || !strings.Contains(r.stderr, msg) {
		t.Errorf("secret create %s: want a failure saying %q, got %s", strings.Join(args, " "), msg, r)
	}
	noSecrets(t, d)
}

// newPassStore makes a throwaway GPG key and pass store, removed at the
// end of the test; env runs pass against it.
func newPassStore(t *testing.T) (home, gnupg, passDir string, env []string) {
	t.Helper()
	home, err := os.MkdirTemp("", "pass") // short: gpg-agent's socket path must fit
	if err != nil {
		t.Fatal(err)
	}
	gnupg = filepath.Join(home, ".gnupg")
	if err := os.Mkdir(gnupg, 0o700); err != nil {
		t.Fatal(err)
	}
	passDir = filepath.Join(home, ".password-store")
	env = []string{"HOME=" + home, "GNUPGHOME=" + gnupg, "PASSWORD_STORE_DIR=" + passDir}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", gnupg, "--kill", "all").Run()
		os.RemoveAll(home)
	})
	runTool(t, env, "", "gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "",
		"--quick-gen-key", "secretd e2e <e2e@secretd.invalid>", "future-default", "default", "never")
	runTool(t, env, "", "pass", "init", "e2e@secretd.invalid")
	return home, gnupg, passDir, env
}

// TestSourcePassStore is Podman's shell-driver contract with a real pass
// store in the host configuration: a secret created with data is kept by
// the store command (pass insert), read in a container through lookup
// (pass show), kept nowhere in secretd, and removed from pass by rm
// (pass rm). Data for a plugin or a lookup-only secret is refused.
func TestSourcePassStore(t *testing.T) {
	needTools(t, "pass", "gpg", "gpgconf")
	home, gnupg, passDir, env := newPassStore(t)
	conf := filepath.Join(home, "shell-driver.conf")
	writeFile(t, conf, `# Podman's contract over pass, one entry per secret ID
lookup = pass show secretd/$SECRET_ID
list   = ls "$PASSWORD_STORE_DIR/secretd" | sed 's/\.gpg$//'
store  = pass insert -m -f secretd/$SECRET_ID >/dev/null
delete = pass rm -f secretd/$SECRET_ID
env = GNUPGHOME=`+gnupg+"\nenv = PASSWORD_STORE_DIR="+passDir+"\ntimeout = 20s\n")
	d := startTestDaemon(t, "--shell-driver-config", conf)

	value := canary(t)
	id := d.mustCLI(value, "secret", "create", "--driver", "shell", "db_password", "-")
	if got := runTool(t, env, "", "pass", "show", "secretd/"+id); got != value {
		t.Fatalf("pass holds %q for the new secret, want the value given", got)
	}
	if got := mustDocker(t, d.runArgs("db_password", []string{"--rm"}, "cat /run/secrets/db_password")...); got != value {
		t.Errorf("container reads %q, want the value kept in pass", got)
	}
	for what, text := range map[string]string{
		"the store on disk": strings.Join(mapValues(storeDump(t, d)), "\n"),
		"the daemon's log":  d.log(),
		"secret inspect":    d.mustCLI("", "secret", "inspect", "db_password"),
	} {
		if strings.Contains(text, value) {
			t.Errorf("%s shows the value kept in pass", what)
		}
	}

	// Data the driver cannot keep is refused, and nothing is created.
	if r := d.cli(value, "secret", "create", "--driver", "shell", "--driver-opt", "store=", "other", "-"); r.code == 0 || !strings.Contains(r.stderr, "cannot store a value") || strings.Contains(r.stderr, value) {
		t.Errorf("create with data and an empty store command: %s", r)
	}
	if out := d.mustCLI("", "secret", "ls", "--format", "{{.Name}}"); out != "db_password" {
		t.Errorf("a refused create changed the secrets: %q", out)
	}

	d.mustCLI("", "secret", "rm", "db_password")
	if r := runCmd(t, env, "", "pass", "show", "secretd/"+id); r.code == 0 {
		t.Errorf("after secret rm, pass still holds the value")
	}
	noSecrets(t, d)
}

// TestSourcePassAndAge reads secrets from a real pass store (a per-secret
// lookup, and the Podman-style host configuration by secret name) and from
// an age-encrypted file, into a container. A token written in a lookup
// shows nowhere: not in the CLI's inspect, the daemon's log, docker
// inspect, nor the lookup's own process arguments.
func TestSourcePassAndAge(t *testing.T) {
	needTools(t, "pass", "gpg", "gpgconf", "age", "age-keygen")
	home, gnupg, passDir, env := newPassStore(t)
	dbPass, apiKey := canary(t), canary(t)
	runTool(t, env, dbPass+"\n", "pass", "insert", "-m", "db/password")
	runTool(t, env, apiKey+"\n", "pass", "insert", "-m", "secretd/api_key")

	// age: one encrypted file, and its identity.
	ageKey := filepath.Join(home, "age.key")
	runTool(t, nil, "", "age-keygen", "-o", ageKey)
	pub := strings.TrimSpace(runTool(t, nil, "", "age-keygen", "-y", ageKey))
	tlsKey := canary(t)
	ageFile := filepath.Join(home, "tls.age")
	runTool(t, nil, tlsKey, "age", "-r", pub, "-o", ageFile)

	// Podman-style host configuration: one lookup serves every secret
	// without a lookup of its own, by name.
	conf := filepath.Join(home, "shell-driver.conf")
	writeFile(t, conf, "# pass, one entry per secret name\nlookup = pass show secretd/$SECRET_NAME\nenv = GNUPGHOME="+gnupg+"\nenv = PASSWORD_STORE_DIR="+passDir+"\ntimeout = 20s\n")
	d := startTestDaemon(t, "--shell-driver-config", conf)

	token := canary(t) // stands for a credential written in a lookup
	argv := filepath.Join(home, "argv")
	lookup := "TOKEN=" + token + "; tr '\\0' ' ' </proc/$$/cmdline >" + argv + "; GNUPGHOME=" + gnupg + " PASSWORD_STORE_DIR=" + passDir + " pass show db/password"
	d.mustCLI("", "secret", "create", "--driver", "shell", "--driver-opt", "lookup="+lookup, "db_password")
	d.mustCLI("", "secret", "create", "--driver", "shell", "api_key")
	d.mustCLI("", "secret", "create", "--driver", "shell", "--driver-opt", "lookup=age -d -i "+ageKey+" "+ageFile, "tls_key")

	ctr := d.ctrName("pass")
	mustDocker(t, d.runArgs("db_password;api_key;tls_key", []string{"-d", "--name", ctr}, sleeper)...)
	if got, want := secretsIn(t, ctr, "/run/secrets"), "api_key="+apiKey+"\ndb_password="+dbPass+"\ntls_key="+tlsKey; got != want {
		t.Errorf("container reads\n%s\nwant\n%s", got, want)
	}

	inspect := d.mustCLI("", "secret", "inspect", "db_password")
	if !strings.Contains(inspect, `"Driver": "shell"`) || !strings.Contains(inspect, `"lookup"`) {
		t.Errorf("secret inspect does not show the driver and its option keys:\n%s", inspect)
	}
	pretty := d.mustCLI("", "secret", "inspect", "--pretty", "db_password")
	if !strings.Contains(pretty, "Driver options:  lookup") || !strings.Contains(pretty, "fetched from the source") {
		t.Errorf("secret inspect --pretty:\n%s", pretty)
	}
	ls := d.mustCLI("", "secret", "ls")
	if !strings.Contains(ls, "DRIVER") || !strings.Contains(ls, "shell (lookup)") {
		t.Errorf("secret ls does not show the driver:\n%s", ls)
	}
	seenArgv, err := os.ReadFile(argv)
	if err != nil {
		t.Fatalf("the lookup did not run as expected: %v", err)
	}
	for what, text := range map[string]string{
		"secret inspect": inspect, "secret inspect --pretty": pretty, "secret ls": ls,
		"the daemon's log":         d.log(),
		"docker inspect":           mustDocker(t, "inspect", ctr),
		"the lookup's own argv":    string(seenArgv),
		"the store on disk":        strings.Join(mapValues(storeDump(t, d)), "\n"),
		"docker secret inspect":    d.dockerSecret("", "inspect", "db_password").stdout,
		"the daemon's own cmdline": procCmdline(t, d.pid()),
	} {
		for _, c := range []string{token, dbPass, apiKey, tlsKey} {
			if strings.Contains(text, c) {
				t.Errorf("%s shows a credential or a value", what)
			}
		}
	}
	// Not stored: no version, nothing to reveal.
	if strings.Contains(inspect, `"CurrentVersion"`) {
		t.Errorf("a driver secret without --cache has a stored version:\n%s", inspect)
	}
}

// procCmdline is a process's argument list.
func procCmdline(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(b), "\x00", " ")
}

// e2ePlugin is a Swarm secret-driver plugin, served with go-plugins-helpers.
type e2ePlugin struct {
	mu     sync.Mutex
	asked  []secrets.Request
	values map[string]string
	onces  int
}

// Get answers as a Swarm plugin: plug_broken with Err, plug_once with a
// value for one task only (DoNotReuse), the others from values.
func (p *e2ePlugin) Get(req secrets.Request) secrets.Response {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.asked = append(p.asked, req)
	switch req.SecretName {
	case "plug_broken":
		return secrets.Response{Err: "vault is sealed: permission denied"}
	case "plug_once", "plug_once_cached":
		p.onces++
		return secrets.Response{Value: []byte(fmt.Sprintf("once-%d-for-%s", p.onces, req.TaskName)), DoNotReuse: true}
	}
	return secrets.Response{Value: []byte(p.values[req.SecretName])}
}

// count is how many times the plugin was asked for name.
func (p *e2ePlugin) count(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, r := range p.asked {
		if r.SecretName == name {
			n++
		}
	}
	return n
}

func (p *e2ePlugin) last(name string) (secrets.Request, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.asked) - 1; i >= 0; i-- {
		if p.asked[i].SecretName == name {
			return p.asked[i], true
		}
	}
	return secrets.Request{}, false
}

// servePlugin serves p as plugin name in a directory of its own, which the
// daemon is pointed at with --secret-driver-dir.
func servePlugin(t *testing.T, name string, p *e2ePlugin) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sdrv") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	l, err := net.Listen("unix", filepath.Join(dir, name+".sock"))
	if err != nil {
		t.Fatal(err)
	}
	go secrets.NewHandler(p).Serve(l)
	t.Cleanup(func() { l.Close() })
	return dir
}

// TestSourcePlugin runs containers whose secrets come from a Swarm-style
// plugin: created with the stock docker CLI, asked with the container's
// fields, a DoNotReuse value per container and never stored, and a plugin
// answering Err stopping the container from starting.
func TestSourcePlugin(t *testing.T) {
	value := canary(t)
	p := &e2ePlugin{values: map[string]string{"plug_value": value}}
	dir := servePlugin(t, "e2evault", p)
	d := startTestDaemon(t, "--secret-driver-dir", dir)

	for _, name := range []string{"plug_value", "plug_once", "plug_broken"} {
		if r := d.dockerSecret("", "create", "--driver", "e2evault", "--label", "path=kv/"+name, name); r.code != 0 {
			t.Fatalf("docker secret create --driver: %s", r)
		}
	}
	d.mustCLI("", "secret", "create", "--driver", "e2evault", "--cache", "plug_once_cached")
	if r := d.dockerSecret("", "inspect", "--format", "{{.Spec.Driver.Name}}", "plug_value"); strings.TrimSpace(r.stdout) != "e2evault" {
		t.Errorf("docker secret inspect: driver %s", r)
	}

	d.mustCLI("v1", "secret", "create", "stored", "-")
	ctr := d.ctrName("plug")
	mustDocker(t, d.runArgs("plug_value;plug_once;stored", []string{"-d", "--name", ctr, "--hostname", "plughost", "--label", "tier=web"}, sleeper)...)
	if got := execSh(t, ctr, "cat /run/secrets/plug_value"); got != value {
		t.Errorf("container reads plug_value %q, want the plugin's value", got)
	}
	once := execSh(t, ctr, "cat /run/secrets/plug_once")
	if !strings.HasPrefix(once, "once-") || !strings.HasSuffix(once, "-for-"+ctr) {
		t.Errorf("container reads plug_once %q, want a value made for it", once)
	}
	// A rotation of another of its secrets keeps the container's
	// DoNotReuse value: the plugin is not asked again.
	asked := p.count("plug_once")
	d.mustCLI("v2", "secret", "update", "stored", "-")
	if got := execSh(t, ctr, "cat /run/secrets/stored; echo; cat /run/secrets/plug_once"); got != "v2\n"+once {
		t.Errorf("after a rotation the container reads %q, want v2 and its plug_once value %q", got, once)
	}
	if n := p.count("plug_once"); n != asked {
		t.Errorf("a rotation asked the plugin for a DoNotReuse value again (%d calls, then %d)", asked, n)
	}
	req, ok := p.last("plug_value")
	switch {
	case !ok:
		t.Fatal("the plugin was never asked")
	case req.TaskName != ctr || req.ServiceName != ctr || req.TaskImage != image || req.ServiceLabels["tier"] != "web" || req.SecretLabels["path"] != "kv/plug_value":
		t.Errorf("the plugin was asked %+v: want the container's name, image and labels, and the secret's labels", req)
	case len(req.TaskID) != 64 || req.ServiceID != req.TaskID:
		t.Errorf("the plugin was asked for task %q, service %q: want the container's ID", req.TaskID, req.ServiceID)
	}

	// The hostname is learned by an inspect at the container's create
	// event: once the daemon has it, the start's Mount sends it. (A
	// `docker run` may start the container before that inspect answers;
	// docker create makes the order certain.)
	hctr := d.ctrName("plughost")
	createArgs := d.runArgs("plug_value", []string{"--name", hctr, "--hostname", "myhost"}, sleeper)
	createArgs[0] = "create"
	hid := mustDocker(t, createArgs...)
	waitFor(t, 30*time.Second, "the daemon to learn the new container's hostname", func() bool {
		for _, l := range strings.Split(d.log(), "\n") {
			if strings.Contains(l, "container hostname learned") && strings.Contains(l, hid[:12]) {
				return true
			}
		}
		return false
	})
	mustDocker(t, "start", hctr)
	if req, ok := p.last("plug_value"); !ok || req.ServiceHostname != "myhost" || req.TaskName != hctr {
		t.Errorf("the plugin was asked %+v: want the hostname myhost of container %s", req, hctr)
	}

	// DoNotReuse: another container gets its own value, and --cache keeps none.
	ctr2 := d.ctrName("plug2")
	mustDocker(t, d.runArgs("plug_once;plug_once_cached", []string{"-d", "--name", ctr2}, sleeper)...)
	once2 := execSh(t, ctr2, "cat /run/secrets/plug_once")
	cached2 := execSh(t, ctr2, "cat /run/secrets/plug_once_cached")
	if !strings.HasSuffix(once2, "-for-"+ctr2) || !strings.HasSuffix(cached2, "-for-"+ctr2) || once2 == cached2 {
		t.Errorf("second container reads plug_once %q, plug_once_cached %q: want values of its own", once2, cached2)
	}
	if out := d.mustCLI("", "secret", "inspect", "--format", "{{.CurrentVersion}} {{len .Versions}}", "plug_once_cached"); out != "0 0" {
		t.Errorf("a DoNotReuse value was kept by --cache: version, versions = %s", out)
	}

	// A plugin answering Err: the container does not start, and docker run
	// says which secret and why.
	r := docker(t, d.runArgs("plug_broken", []string{"--name", d.ctrName("broken")}, "true")...)
	if r.code == 0 || !strings.Contains(r.stderr, "secret 'plug_broken'") || !strings.Contains(r.stderr, "vault is sealed: permission denied") {
		t.Errorf("docker run with a plugin answering Err: %s", r)
	}

	// Bad input: an unknown driver, and options for a plugin.
	if r := d.dockerSecret("", "create", "--driver", "nosuchdriver", "nope"); r.code == 0 || !strings.Contains(r.stderr, "unknown secret driver") {
		t.Errorf("docker secret create --driver nosuchdriver: %s", r)
	}
	if r := d.cli("", "secret", "create", "--driver", "e2evault", "--driver-opt", "role=x", "nope"); r.code == 0 || !strings.Contains(r.stderr, "get no driver options") {
		t.Errorf("plugin with --driver-opt: %s", r)
	}
	if out := d.mustCLI("", "secret", "ls", "--format", "{{.Name}}"); strings.Contains(out, "nope") {
		t.Errorf("a refused create left a secret: %s", out)
	}
}

// TestSourceDown: a source that is down stops a container from starting,
// naming the secret, unless the secret has --cache: then the cached value
// is served, and the log and inspect say so.
func TestSourceDown(t *testing.T) {
	d := startTestDaemon(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "value")
	first := canary(t)
	writeFile(t, file, first)
	d.mustCLI("", "secret", "create", "--driver", "shell", "--driver-opt", "lookup=cat "+file, "plain")
	d.mustCLI("", "secret", "create", "--driver", "shell", "--driver-opt", "lookup=cat "+file, "--cache", "cached")
	if got := mustDocker(t, d.runArgs("plain;cached", nil, "cat /run/secrets/plain; echo; cat /run/secrets/cached")...); got != first+"\n"+first {
		t.Fatalf("container reads %q", got)
	}

	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	r := docker(t, d.runArgs("plain", nil, "cat /run/secrets/plain")...)
	// The command's stderr goes to the daemon's log, not into the error.
	if r.code == 0 || !strings.Contains(r.stderr, "secret 'plain'") || !strings.Contains(r.stderr, "the source failed (exit status 1): see the daemon log") {
		t.Errorf("docker run with its source down: want a failure naming the secret and pointing at the log, got %s", r)
	}
	if !strings.Contains(d.log(), "No such file or directory") {
		t.Errorf("the daemon's log lacks the source's error")
	}
	if got := mustDocker(t, d.runArgs("cached", nil, "cat /run/secrets/cached")...); got != first {
		t.Errorf("with --cache and the source down, the container reads %q, want the cached value", got)
	}
	if pretty := d.mustCLI("", "secret", "inspect", "--pretty", "cached"); !strings.Contains(pretty, "served from the cache (stale)") {
		t.Errorf("secret inspect does not say the value served is stale:\n%s", pretty)
	}
	if ls := d.mustCLI("", "secret", "ls"); !strings.Contains(ls, "[cached]") {
		t.Errorf("secret ls does not say the value served is stale:\n%s", ls)
	}
	if !strings.Contains(d.log(), "serving the cached value") {
		t.Errorf("the daemon's log does not say it served the cache")
	}
}

// TestSourceRefresh: with --refresh 1s, a change at the source reaches a
// running container in place, without a restart; a failing source keeps
// the container's files.
func TestSourceRefresh(t *testing.T) {
	d := startTestDaemon(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "value")
	first, second := canary(t), canary(t)
	writeFile(t, file, first)
	d.mustCLI("", "secret", "create", "--driver", "shell", "--driver-opt", "lookup=cat "+file, "--refresh", "1s", "refreshed")
	ctr := d.ctrName("refresh")
	mustDocker(t, d.runArgs("refreshed", []string{"-d", "--name", ctr}, sleeper)...)
	started := mustDocker(t, "inspect", "--format", "{{.State.StartedAt}}", ctr)
	if got := execSh(t, ctr, "cat /run/secrets/refreshed"); got != first {
		t.Fatalf("container reads %q", got)
	}

	writeFile(t, file+".new", second)
	if err := os.Rename(file+".new", file); err != nil {
		t.Fatal(err)
	}
	changed := time.Now()
	waitFor(t, 5*time.Second, "the new value in the running container", func() bool {
		return execSh(t, ctr, "cat /run/secrets/refreshed") == second
	})
	t.Logf("the change reached the container in %s", time.Since(changed).Round(10*time.Millisecond))
	if now := mustDocker(t, "inspect", "--format", "{{.State.StartedAt}}", ctr); now != started {
		t.Errorf("the container was restarted (%s, then %s)", started, now)
	}
	if v := d.mustCLI("", "secret", "inspect", "--format", "{{.CurrentVersion}}", "refreshed"); v != "2" {
		t.Errorf("after one change the secret is at version %s, want 2", v)
	}

	// Its value is the source's: secret update is refused, and changes nothing.
	if r := d.cli("x", "secret", "update", "refreshed", "-"); r.code == 0 || !strings.Contains(r.stderr, "takes its value from secret driver") {
		t.Errorf("secret update of a driver secret: %s", r)
	}

	// The source fails: the files stay, the failure is logged.
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a failed refresh in the log", func() bool {
		return strings.Contains(d.log(), "secret refresh failed")
	})
	if got := execSh(t, ctr, "cat /run/secrets/refreshed"); got != second {
		t.Errorf("after a failed refresh the container reads %q, want the last value", got)
	}
	// Removed: its refresher stops with it.
	mustDocker(t, "rm", "-f", ctr)
	d.mustCLI("", "secret", "rm", "refreshed")
	waitFor(t, 5*time.Second, "the refresher to stop", func() bool {
		return strings.Contains(d.log(), "secret refresh stopped")
	})
}

// TestSourceRefreshRestart: a daemon restart rolls out nothing when the
// source did not change: the restarted refresher compares with the stored
// version, and polls many times without storing one.
func TestSourceRefreshRestart(t *testing.T) {
	d := startTestDaemon(t)
	dir := t.TempDir()
	file, polls := filepath.Join(dir, "value"), filepath.Join(dir, "polls")
	writeFile(t, file, canary(t))
	d.mustCLI("", "secret", "create", "--driver", "shell", "--driver-opt", "lookup=echo poll >>"+polls+"; cat "+file, "--refresh", "1s", "steady")
	d.stop()
	if err := os.Remove(polls); err != nil {
		t.Fatal(err)
	}
	d.start()
	waitFor(t, 15*time.Second, "three polls after the restart", func() bool {
		b, _ := os.ReadFile(polls)
		return strings.Count(string(b), "poll") >= 3
	})
	if v := d.mustCLI("", "secret", "inspect", "--format", "{{.CurrentVersion}}", "steady"); v != "1" {
		t.Errorf("an unchanged source made version %s after a restart, want 1", v)
	}
}

// TestSourceBadInput: each bad create gets a clear error and stores nothing.
func TestSourceBadInput(t *testing.T) {
	d := startTestDaemon(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	writeFile(t, data, "x")
	refusedCreate(t, d, "", "unknown secret driver", "--driver", "nosuchdriver", "s1")
	refusedCreate(t, d, "", "cannot store a value", "--driver", "shell", "--driver-opt", "lookup=echo x", "s2", data)
	// A mistyped driver with data is named as missing, with the built-in it is a typo of.
	refusedCreate(t, d, "x", `no plugin "shel"`, "--driver", "shel", "s2", "-")
	refusedCreate(t, d, "x", "did you mean --driver shell?", "--driver", "shel", "s2", "-")
	refusedCreate(t, d, "", "lookup option is empty", "--driver", "shell", "--driver-opt", "lookup=", "s3")
	refusedCreate(t, d, "", "timed out", "--driver", "shell", "--driver-opt", "lookup=sleep 60", "--driver-opt", "timeout=1s", "s4")
	refusedCreate(t, d, "", "500 KiB", "--driver", "shell", "--driver-opt", "lookup=head -c 600000 /dev/zero", "s5")
	refusedCreate(t, d, "", "give --driver too", "--refresh", "1m", "s6", data)
	refusedCreate(t, d, "", "at least 1s", "--driver", "shell", "--driver-opt", "lookup=echo x", "--refresh", "10ms", "s7")
	refusedCreate(t, d, "", "empty value", "--driver", "shell", "--driver-opt", "lookup=true", "s8")
	// The stock CLI refuses data with a driver itself; a raw request is refused by secretd.
	if r := d.dockerSecret("", "create", "--driver", "shell", "s9", data); r.code == 0 {
		t.Errorf("docker secret create --driver with data: %s", r)
	}
	code, body := apiRaw(t, apiClient(d.sock), "POST", "/v1.41/secrets/create", "application/json",
		strings.NewReader(`{"Name":"s10","Data":"eA==","Driver":{"Name":"shell","Options":{"lookup":"echo x"}}}`))
	if code != 400 || !strings.Contains(body, "cannot store a value") {
		t.Errorf("a create with data and a driver: %d %s", code, body)
	}
	noSecrets(t, d)
}
