package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func canary(t testing.TB) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "canary-" + hex.EncodeToString(b)
}

var idRE = regexp.MustCompile(`^[0-9a-z]{25}$`)

// TestSecretCLIAndDockerCLIAgree drives the same daemon with secretd's CLI
// and the stock docker CLI and checks both see and say the same things.
func TestSecretCLIAndDockerCLIAgree(t *testing.T) {
	d := startDaemon(t)

	id1 := d.mustCLI("s3cr3t", "secret", "create", "--label", "env=prod", "--label", "team=web", "db_password", "-")
	if !idRE.MatchString(id1) {
		t.Fatalf("create printed %q, want a 25-character ID", id1)
	}
	r := d.dockerSecret("from-docker", "create", "--label", "env=dev", "api_key", "-")
	if r.code != 0 || !idRE.MatchString(strings.TrimSpace(r.stdout)) {
		t.Fatalf("docker secret create: %s", r)
	}
	id2 := strings.TrimSpace(r.stdout)
	f := filepath.Join(t.TempDir(), "cert.pem")
	os.WriteFile(f, []byte("-----BEGIN CERTIFICATE-----\n"), 0o600)
	d.mustCLI("", "secret", "create", "tls_cert", f)
	gen := d.mustCLI("", "secret", "create", "--generate", "32", "django_key")
	if !idRE.MatchString(gen) {
		t.Fatalf("--generate printed %q: only the ID may be printed", gen)
	}
	env := runCmd(t, []string{"SECRETD_HOST=unix://" + d.sock, "MY_TOKEN=tok"}, "", binary, "secret", "create", "--from-env", "MY_TOKEN", "token")
	if env.code != 0 {
		t.Fatalf("--from-env: %s", env)
	}

	// Same IDs and names through both CLIs, sorted by name.
	want := "api_key\ndb_password\ndjango_key\ntls_cert\ntoken"
	ours := d.mustCLI("", "secret", "ls", "--format", "{{.Name}}")
	theirs := d.dockerSecret("", "ls", "--format", "{{.Name}}")
	if ours != want || strings.TrimSpace(theirs.stdout) != want {
		t.Fatalf("ls names: secretd %q, docker %q, want %q", ours, theirs.stdout, want)
	}
	qOurs := strings.Fields(d.mustCLI("", "secret", "ls", "-q"))
	qTheirs := strings.Fields(d.dockerSecret("", "ls", "-q").stdout)
	slices.Sort(qOurs)
	slices.Sort(qTheirs)
	if !slices.Equal(qOurs, qTheirs) || len(qOurs) != 5 || !slices.Contains(qOurs, id1) || !slices.Contains(qOurs, id2) {
		t.Fatalf("ls -q: secretd %v, docker %v", qOurs, qTheirs)
	}
	table := d.dockerSecret("", "ls")
	if !strings.HasPrefix(table.stdout, "ID ") || !strings.Contains(table.stdout, "db_password") {
		t.Fatalf("docker secret ls table: %s", table)
	}
	ourTable := d.mustCLI("", "secret", "ls")
	if !regexp.MustCompile(`(?m)^ID\s+NAME\s+VERSION\s+CREATED\s+UPDATED$`).MatchString(ourTable) {
		t.Fatalf("secretd secret ls header:\n%s", ourTable)
	}

	for _, c := range []struct{ filter, want string }{
		{"name=d", "db_password\ndjango_key"},
		{"label=env", "api_key\ndb_password"},
		{"label=env=prod", "db_password"},
		{"id=" + id2[:10], "api_key"},
	} {
		ours := d.mustCLI("", "secret", "ls", "--filter", c.filter, "--format", "{{.Name}}")
		theirs := strings.TrimSpace(d.dockerSecret("", "ls", "--filter", c.filter, "--format", "{{.Name}}").stdout)
		if ours != c.want || theirs != c.want {
			t.Errorf("--filter %s: secretd %q docker %q, want %q", c.filter, ours, theirs, c.want)
		}
	}

	// Inspect: JSON without data, by name, ID and ID prefix.
	for _, ref := range []string{"db_password", id1, id1[:8]} {
		var ours, theirs []map[string]any
		if err := json.Unmarshal([]byte(d.mustCLI("", "secret", "inspect", ref)), &ours); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(d.dockerSecret("", "inspect", ref).stdout), &theirs); err != nil {
			t.Fatal(err)
		}
		if len(ours) != 1 || len(theirs) != 1 || ours[0]["ID"] != id1 || theirs[0]["ID"] != id1 {
			t.Fatalf("inspect %s: %v / %v", ref, ours, theirs)
		}
		spec := theirs[0]["Spec"].(map[string]any)
		if spec["Name"] != "db_password" || spec["Data"] != nil {
			t.Fatalf("inspect spec: %v", spec)
		}
	}
	if got := d.mustCLI("", "secret", "inspect", "--format", "{{.Spec.Name}} {{index .Spec.Labels \"env\"}}", "db_password"); got != "db_password prod" {
		t.Errorf("inspect --format: %q", got)
	}
	if got := strings.TrimSpace(d.dockerSecret("", "inspect", "--format", "{{.Spec.Name}}", id1).stdout); got != "db_password" {
		t.Errorf("docker inspect --format: %q", got)
	}
	for _, pretty := range []string{d.mustCLI("", "secret", "inspect", "--pretty", "db_password"), d.dockerSecret("", "inspect", "--pretty", "db_password").stdout} {
		if !regexp.MustCompile(`ID:\s+`+id1).MatchString(pretty) || !strings.Contains(pretty, " - env=prod") {
			t.Errorf("inspect --pretty:\n%s", pretty)
		}
	}

	// rm of several at once, one missing: the others go, the missing one errs.
	r = d.cli("", "secret", "rm", "tls_cert", "nope", "token")
	if r.code == 0 || !strings.Contains(r.stderr, "Error response from daemon: secret 'nope' not found") {
		t.Fatalf("rm with a missing name: %s", r)
	}
	if strings.TrimSpace(r.stdout) != "tls_cert\ntoken" {
		t.Fatalf("rm printed %q", r.stdout)
	}
	r = d.dockerSecret("", "rm", "api_key")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "api_key" {
		t.Fatalf("docker secret rm: %s", r)
	}
	if got := d.mustCLI("", "secret", "ls", "--format", "{{.Name}}"); got != "db_password\ndjango_key" {
		t.Fatalf("after rm: %q", got)
	}
}

// TestSwarmValidationMessages checks that both CLIs refuse what Swarm
// refuses, with Swarm's words, and that nothing is stored.
func TestSwarmValidationMessages(t *testing.T) {
	d := startDaemon(t)
	d.mustCLI("x", "secret", "create", "taken", "-")
	big := strings.Repeat("a", 500*1024)
	const nameMsg = "invalid name, only 64 [a-zA-Z0-9-_.] characters allowed, and the start and end character must be [a-zA-Z0-9]"
	const sizeMsg = "secret data must be larger than 0 and less than 512000 bytes"
	cases := []struct {
		name, stdin, msg string
	}{
		{"-leading", "x", nameMsg},
		{"trailing.", "x", nameMsg},
		{"has space", "x", nameMsg},
		{"slash/name", "x", nameMsg},
		{strings.Repeat("n", 65), "x", nameMsg},
		{"big", big, sizeMsg},
		{"taken", "x", "secret taken already exists"},
	}
	for _, c := range cases {
		for cli, r := range map[string]result{
			"secretd": d.cli(c.stdin, "secret", "create", "--", c.name, "-"),
			"docker":  d.dockerSecret(c.stdin, "create", "--", c.name, "-"),
		} {
			if r.code == 0 || !strings.Contains(r.stderr, "Error response from daemon: "+c.msg) {
				t.Errorf("%s create %.20q: %s", cli, c.name, r)
			}
		}
	}
	// Empty data: the docker CLI refuses it itself; secretd's CLI leaves it
	// to the daemon, which answers with Swarm's message.
	if r := d.dockerSecret("", "create", "empty", "-"); r.code == 0 || !strings.Contains(r.stderr, "data is empty") {
		t.Errorf("docker create with empty data: %s", r)
	}
	if r := d.cli("", "secret", "create", "empty", "-"); r.code == 0 || !strings.Contains(r.stderr, sizeMsg) {
		t.Errorf("secretd create with empty data: %s", r)
	}
	// 500 KiB minus one byte is the largest accepted.
	d.mustCLI(big[1:], "secret", "create", "largest", "-")
	// Client-side refusals.
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"secret", "create", "x"}, "no data given"},
		{[]string{"secret", "create", "--generate", "0", "x"}, "--generate 0: the size must be at least 1"},
		{[]string{"secret", "create", "--generate", "-3", "x"}, "--generate -3: the size must be at least 1"},
		{[]string{"secret", "create", "--from-env", "SECRETD_E2E_UNSET", "x"}, "the variable is not set"},
		{[]string{"secret", "create", "--generate", "8", "x", "-"}, "give the data one way only"},
		{[]string{"secret", "create", "--label", "=v", "--generate", "8", "x"}, "invalid label \"=v\""},
		{[]string{"secret", "create", "x", "/nonexistent/file"}, "error reading content from \"/nonexistent/file\""},
		{[]string{"secret", "ls", "--filter", "bogus"}, "bad format of filter"},
		{[]string{"secret", "ls", "--filter", "color=red"}, "invalid filter 'color'"},
		{[]string{"secret", "inspect", "nope"}, "secret 'nope' not found"},
		{[]string{"secret", "inspect", "--pretty", "--format", "x", "taken"}, "--format is incompatible"},
		{[]string{"secret", "ls", "--format", "{{.Nope"}, "template parsing error"},
		{[]string{"secret", "bogus"}, "unknown command"},
		{[]string{"secret", "ls", "--bogus"}, "unknown flag: --bogus"},
	} {
		r := d.cli("", c.args...)
		if r.code == 0 || !strings.Contains(r.stderr, c.msg) {
			t.Errorf("secretd %v: %s\nwant %q", c.args, r, c.msg)
		}
	}
	if got := d.mustCLI("", "secret", "ls", "--format", "{{.Name}}"); got != "largest\ntaken" {
		t.Fatalf("refused creates stored something: %q", got)
	}
}

// TestCanaryNeverStored checks the secret's bytes appear in no file of the
// data root, no log line and no process argument.
func TestCanaryNeverStored(t *testing.T) {
	d := startDaemon(t)
	c := canary(t)
	d.mustCLI(c, "secret", "create", "canary", "-")
	d.dockerSecret(c, "create", "canary2", "-")
	env := runCmd(t, []string{"SECRETD_HOST=unix://" + d.sock, "CANARY_VAR=" + c}, "", binary, "secret", "create", "--from-env", "CANARY_VAR", "canary3")
	if env.code != 0 {
		t.Fatal(env)
	}
	d.mustCLI("", "secret", "inspect", "canary")
	d.mustCLI("", "secret", "ls")
	d.mustCLI("", "key", "rotate")
	d.stop()
	assertNoCanary(t, d, c)
}

// assertNoCanary searches the daemon's files, logs and every process's
// command line for c.
func assertNoCanary(t *testing.T, d *daemon, c string) {
	t.Helper()
	filepath.Walk(d.dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || !info.Mode().IsRegular() {
			return nil
		}
		if b, _ := os.ReadFile(p); strings.Contains(string(b), c) {
			t.Errorf("canary found in %s", p)
		}
		return nil
	})
	if strings.Contains(d.log(), c) || strings.Contains(d.stdout(), c) {
		t.Error("canary found in the daemon's log")
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, _ := os.ReadFile(p); strings.Contains(string(b), c) {
			t.Errorf("canary found in %s: %q", p, b)
		}
	}
}

// TestAutolock walks the unlock-key life cycle through the CLI.
func TestAutolock(t *testing.T) {
	d := newDaemon(t, "--autolock")
	d.start()
	// The unlock key of a new store reaches the operator through the API
	// socket only: the daemon's stdout and stderr end up in journald or
	// in Docker's JSON log on disk.
	key := d.mustCLI("", "unlock-key", "-q")
	if !regexp.MustCompile(`^SECDKEY-1-[A-Za-z0-9_-]{43}$`).MatchString(key) {
		t.Fatalf("unlock-key -q printed %q, want only the key", key)
	}
	if strings.Contains(d.log(), key) || strings.Contains(d.stdout(), key) || strings.Contains(d.stdout(), "SECDKEY-1-") {
		t.Fatalf("the unlock key reached the daemon's output:\nstdout: %s", d.stdout())
	}
	if !strings.Contains(d.log(), "run 'secretd unlock-key'") {
		t.Fatalf("the daemon's log does not say how to get the unlock key:\n%s", d.log())
	}
	if _, err := os.Stat(filepath.Join(d.dataRoot, "key")); !os.IsNotExist(err) {
		t.Fatal("--autolock wrote a key file")
	}
	d.mustCLI("v1", "secret", "create", "a", "-")

	d.stop()
	d.start()
	st := d.mustCLI("", "status", "--format", "{{.Locked}}")
	if st != "true" {
		t.Fatalf("restarted autolocked daemon: locked=%s", st)
	}
	r := d.cli("v", "secret", "create", "b", "-")
	if r.code == 0 || !strings.Contains(r.stderr, "secretd is locked: run 'secretd unlock'") {
		t.Fatalf("create while locked: %s", r)
	}
	if got := d.mustCLI("", "secret", "ls", "--format", "{{.Name}}"); got != "a" {
		t.Fatalf("ls while locked: %q", got)
	}
	for _, bad := range []string{"", "not-a-key\n", "SECDKEY-1-" + strings.Repeat("A", 43) + "\n"} {
		if r := d.cli(bad, "unlock"); r.code == 0 {
			t.Fatalf("unlock with %q succeeded", bad)
		}
	}
	if r := d.cli("", "unlock", key); r.code == 0 || !strings.Contains(r.stderr, "unknown command") && !strings.Contains(r.stderr, "accepts 0 arg") {
		t.Fatalf("unlock took the key as an argument: %s", r)
	}
	d.mustCLI(key+"\n", "unlock")
	if st := d.mustCLI("", "status", "--format", "{{.Locked}}"); st != "false" {
		t.Fatal("still locked after unlock")
	}
	if r := d.cli(key+"\n", "unlock"); r.code == 0 || !strings.Contains(r.stderr, "not locked") {
		t.Fatalf("second unlock: %s", r)
	}
	d.mustCLI("v2", "secret", "create", "b", "-")

	rotated := d.mustCLI("", "unlock-key", "--rotate", "-q")
	if rotated == key || !strings.HasPrefix(rotated, "SECDKEY-1-") {
		t.Fatalf("rotated key %q", rotated)
	}
	d.mustCLI("", "key", "rotate")
	d.stop()
	d.start()
	if r := d.cli(key+"\n", "unlock"); r.code == 0 || !strings.Contains(r.stderr, "invalid unlock key") {
		t.Fatalf("old unlock key after rotation: %s", r)
	}
	d.mustCLI(rotated+"\n", "unlock")
	d.mustCLI("v3", "secret", "create", "c", "-")
	if got := d.mustCLI("", "secret", "ls", "--format", "{{.Name}}"); got != "a\nb\nc" {
		t.Fatalf("secrets after rotations: %q", got)
	}
	if out := d.log() + d.stdout(); strings.Contains(out, key) || strings.Contains(out, rotated) {
		t.Fatalf("an unlock key reached the daemon's output")
	}
}

// TestDaemonRefusesBadStarts checks each start-up refusal says why and
// leaves the store as it was.
func TestDaemonRefusesBadStarts(t *testing.T) {
	d := startDaemon(t)
	d.mustCLI("x", "secret", "create", "a", "-")
	d.stop()
	dbPath := filepath.Join(d.dataRoot, "secrets.db")
	before, err := os.ReadFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) result {
		base := []string{"daemon", "--data-root", d.dataRoot, "-H", "unix://" + d.sock, "--mount-root", d.mountRoot, "--driver-name", d.driver}
		return runCmd(t, nil, "", binary, append(base, args...)...)
	}

	other := filepath.Join(t.TempDir(), "other.key")
	os.WriteFile(other, []byte(strings.Repeat("k", 32)), 0o600)
	if r := run("--key-file", other); r.code == 0 || !strings.Contains(r.stderr, "wrong key file "+other) {
		t.Errorf("wrong key file: %s", r)
	}
	os.Chmod(filepath.Join(d.dataRoot, "key"), 0o644)
	if r := run(); r.code == 0 || !strings.Contains(r.stderr, "must not be readable by group or others") {
		t.Errorf("world-readable key file: %s", r)
	}
	os.Chmod(filepath.Join(d.dataRoot, "key"), 0o600)
	if r := run("--autolock"); r.code == 0 || !strings.Contains(r.stderr, "created without --autolock") {
		t.Errorf("--autolock on a key-file store: %s", r)
	}
	if r := run("-H", "tcp://127.0.0.1:0"); r.code == 0 || !strings.Contains(r.stderr, "needs mutual TLS") {
		t.Errorf("plain TCP host: %s", r)
	}
	if r := run("--log-format", "xml"); r.code == 0 || !strings.Contains(r.stderr, "--log-format \"xml\"") {
		t.Errorf("bad log format: %s", r)
	}
	// Not root.
	cmd := runAs(t, 65534, binary, "daemon", "--data-root", t.TempDir())
	if cmd.code == 0 || !strings.Contains(cmd.stderr, "must run as root") {
		t.Errorf("as nobody: %s", cmd)
	}
	after, _ := os.ReadFile(dbPath)
	if string(before) != string(after) {
		t.Fatal("a refused start changed the store file")
	}

	// A corrupted store file is reported and left alone.
	bad := append([]byte{}, before...)
	for i := 4096; i < len(bad) && i < 4096*3; i++ {
		bad[i] ^= 0xff
	}
	os.WriteFile(dbPath, bad, 0o600)
	r := run()
	if r.code == 0 || !strings.Contains(r.stderr, "secrets.db") {
		t.Errorf("corrupted store: %s", r)
	}
	if got, _ := os.ReadFile(dbPath); string(got) != string(bad) {
		t.Error("the daemon rewrote a corrupted store file")
	}
	os.WriteFile(dbPath, before, 0o600)
	d.start()
	if got := d.mustCLI("", "secret", "ls", "--format", "{{.Name}}"); got != "a" {
		t.Fatalf("restored store: %q", got)
	}
}

// runAs runs a command as uid with no supplementary groups.
func runAs(t *testing.T, uid uint32, name string, args ...string) result {
	t.Helper()
	return runCmdAttr(t, &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}, name, args...)
}
