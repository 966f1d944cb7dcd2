package e2e

// Who may name a command (issue 22, item 1): the shell driver runs its
// commands as root, so only root names them. A member of the API group may
// use the commands of the host's root-owned configuration, never its own.

import (
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/secretd/secretd/internal/store/etcd/etcdtest"
)

// apiGroupMember creates a group and a user in it, removed at the end of
// the test, and returns the credentials to run a command as that user.
func apiGroupMember(t *testing.T) (group string, cred *syscall.Credential) {
	t.Helper()
	tag := canary(t)[len("canary-"):][:8]
	group, name := "sdg"+tag, "sdu"+tag
	if out, err := exec.Command("groupadd", group).CombinedOutput(); err != nil {
		t.Fatalf("groupadd %s: %v: %s", group, err, out)
	}
	t.Cleanup(func() { exec.Command("groupdel", group).Run() })
	if out, err := exec.Command("useradd", "-M", "-N", "-g", group, "-s", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() { exec.Command("userdel", name).Run() })
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if uid == 0 {
		t.Fatalf("useradd made %s uid 0", name)
	}
	return group, &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

// TestSecurityGroupCannotNameCommands replays the reported attack: a
// non-root member of the API group creates a shell-driver secret whose
// lookup is `id > FILE`, then one whose lookup prints the root key file on
// stderr. Both are refused with 403 before anything runs, and audited. The
// commands of the root-owned configuration stay usable by that member, as
// Podman's containers.conf commands are. A command root names that fails
// sends its stderr to the daemon's log, never to the client.
func TestSecurityGroupCannotNameCommands(t *testing.T) {
	t.Parallel()
	group, cred := apiGroupMember(t)
	confDir := t.TempDir()
	conf := filepath.Join(confDir, "shell-driver.conf")
	if err := os.WriteFile(conf, []byte("lookup = printf 'configured-%s' \"$SECRET_NAME\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startTestDaemon(t, "--group", group, "--shell-driver-config", conf)
	// The socket sits in the test's private directory: open it to
	// traversal so the socket's own mode is what decides.
	if err := os.Chmod(d.dir, 0o711); err != nil {
		t.Fatal(err)
	}
	member := func(args ...string) result {
		return runCmdAttr(t, &syscall.SysProcAttr{Credential: cred}, binary, append([]string{"-H", "unix://" + d.sock}, args...)...)
	}
	if r := member("secret", "ls"); r.code != 0 {
		t.Fatalf("the group member cannot use the API: %s", r)
	}

	// 1. `id > FILE` as the lookup: refused, and FILE never appears.
	proof := filepath.Join(t.TempDir(), "whoami")
	r := member("secret", "create", "--driver", "shell", "--driver-opt", "lookup=id > "+proof+"; echo x", "x")
	if r.code == 0 || !strings.Contains(r.stderr, "only root may name one") {
		t.Errorf("a group member naming a lookup: want refused, got %s", r)
	}
	if b, err := os.ReadFile(proof); err == nil {
		t.Fatalf("the group member's command ran as %s", b)
	}
	// 2. The root key file on stderr: refused, no byte of the key shown.
	key, err := os.ReadFile(filepath.Join(d.dataRoot, "key"))
	if err != nil {
		t.Fatal(err)
	}
	r = member("secret", "create", "--driver", "shell", "--driver-opt", "lookup=od -An -tx1 "+filepath.Join(d.dataRoot, "key")+" >&2; exit 1", "y")
	if r.code == 0 || !strings.Contains(r.stderr, "only root may name one") {
		t.Errorf("a group member naming a key-printing lookup: want refused, got %s", r)
	}
	if strings.Contains(r.stdout+r.stderr, hex.EncodeToString(key[:4])) || strings.Contains(r.stdout+r.stderr, fmt.Sprintf("%02x %02x %02x", key[0], key[1], key[2])) {
		t.Fatalf("the root key reached the group member: %s", r)
	}
	// 3. Store and delete commands, with data: refused too.
	r = runWith(t, nil, "data", &syscall.SysProcAttr{Credential: cred}, binary, "-H", "unix://"+d.sock,
		"secret", "create", "--driver", "shell", "--driver-opt", "store=cat > "+proof, "--driver-opt", "delete=true", "z", "-")
	if r.code == 0 || !strings.Contains(r.stderr, "only root may name one") {
		t.Errorf("a group member naming store and delete: want refused, got %s", r)
	}
	if _, err := os.Stat(proof); err == nil {
		t.Fatal("the group member's store command ran")
	}
	noSecrets(t, d)
	denied := 0
	for _, e := range auditEvents(t, filepath.Join(d.dataRoot, "audit.log")) {
		if e["event"] == "denied" && e["action"] == "secret.create" {
			actor, _ := e["actor"].(map[string]any)
			if actor == nil || actor["uid"] != float64(cred.Uid) {
				t.Errorf("denied create without the member's uid: %v", e)
			}
			denied++
		}
	}
	if denied != 3 {
		t.Errorf("%d denied creates in the audit trail, want 3", denied)
	}

	// The configuration's lookup is root's: the member may use it, and a
	// container reads the value.
	if r := member("secret", "create", "--driver", "shell", "conf_db"); r.code != 0 {
		t.Fatalf("a group member using the configured lookup: %s", r)
	}
	out := mustDocker(t, d.runArgs("conf_db", []string{"--rm", "--pull", "never"}, "cat /run/secrets/conf_db")...)
	if out != "configured-conf_db" {
		t.Errorf("a container read %q, want the configured lookup's value", out)
	}

	// Root may name a command; when it fails, its stderr goes to the
	// daemon's log and the client is told to look there.
	secretText := canary(t)
	r = d.cli("", "secret", "create", "--driver", "shell", "--driver-opt", "lookup=echo "+secretText+" >&2; exit 1", "root_made")
	if r.code == 0 || strings.Contains(r.stderr, secretText) || !strings.Contains(r.stderr, "the source failed (exit status 1): see the daemon log") {
		t.Errorf("root's failing lookup: want the source failed without its stderr, got %s", r)
	}
	if !strings.Contains(d.log(), secretText) {
		t.Errorf("the daemon log lacks the command's stderr")
	}
	failed := false
	for _, e := range auditEvents(t, filepath.Join(d.dataRoot, "audit.log")) {
		if e["event"] == "secret.create.failed" && e["secret"] == "root_made" {
			failed = true
		}
	}
	if !failed {
		t.Error("the failed create whose command ran is not in the audit trail")
	}
	if strings.Contains(d.mustCLI("", "secret", "ls", "--format", "{{.Name}}"), "root_made") {
		t.Error("a failed create left its secret behind")
	}
}

// TestMultiHostCommandTrust: on a shared etcd store, a shell command host
// 1's root named runs on host 1, but a container on host 2 that declares
// the secret fails to start with a clear error and the command does not
// run there, until host 2 trusts host 1 (--trust-commands-from host1).
func TestMultiHostCommandTrust(t *testing.T) {
	t.Parallel()
	etcd := etcdtest.Start(t, 1)
	key := sharedKey(t)
	flags := func(id string, extra ...string) []string {
		return append([]string{"--store", etcd.URL(), "--host-id", id, "--key-file", key}, extra...)
	}
	d1 := startTestDaemon(t, flags("host1")...)
	d2 := startTestDaemon(t, flags("host2")...)
	// Each run appends the pid of the secretd that ran it: the shell's parent.
	ran := filepath.Join(t.TempDir(), "ran")
	d1.mustCLI("", "secret", "create", "--driver", "shell", "--driver-opt", "lookup=echo $PPID >> "+ran+"; printf from-host1", "cmd_secret")
	ranBy := func() string { b, _ := os.ReadFile(ran); return string(b) }
	if !strings.Contains(ranBy(), strconv.Itoa(d1.pid())) {
		t.Fatalf("host 1 did not run its own root's lookup at create: %q", ranBy())
	}

	r := docker(t, d2.runArgs("cmd_secret", []string{"--rm", "--pull", "never"}, "cat /run/secrets/cmd_secret")...)
	if r.code == 0 || !strings.Contains(r.stderr, `was named on host "host1"`) || !strings.Contains(r.stderr, "--trust-commands-from host1") {
		t.Errorf("a container on host 2 using host 1's command: want refused naming host1, got %s", r)
	}
	if strings.Contains(ranBy(), strconv.Itoa(d2.pid())) {
		t.Fatalf("host 2 ran a command host 1 named: %q", ranBy())
	}

	d3 := startTestDaemon(t, flags("host3", "--trust-commands-from", "host1")...)
	if got := mustDocker(t, d3.runArgs("cmd_secret", []string{"--rm", "--pull", "never"}, "cat /run/secrets/cmd_secret")...); got != "from-host1" {
		t.Errorf("a container on a host trusting host 1 reads %q, want from-host1", got)
	}
	if !strings.Contains(ranBy(), strconv.Itoa(d3.pid())) {
		t.Errorf("the trusting host did not run the lookup: %q", ranBy())
	}
}
