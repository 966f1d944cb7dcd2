package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secretd/secretd/internal/store/etcd/etcdtest"
	"github.com/secretd/secretd/secretdtest"
)

// daemonOnce runs `secretd daemon` with args that are expected to keep it
// from starting; it stops the daemon after timeout if it starts anyway.
func daemonOnce(t *testing.T, env []string, timeout time.Duration, args ...string) result {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	base := []string{"daemon", "--data-root", filepath.Join(dir, "data"), "--mount-root", filepath.Join(dir, "mounts"),
		"-H", "unix://" + filepath.Join(dir, "api.sock"), "--driver-name", secretdtest.DriverName(t, "secretd-test")}
	cmd := exec.CommandContext(ctx, binary, append(base, args...)...)
	cmd.Env = append(os.Environ(), env...)
	// A daemon that did start stops as it should, wiping its mounts.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 15 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	}
	if ctx.Err() != nil {
		r.code, r.stderr = 0, r.stderr+"\n(still running after "+timeout.String()+": it started)"
	}
	return r
}

// TestMultiHostEtcdTLS: two autolocked hosts share a store on an etcd
// cluster that serves TLS and requires client certificates. Both reach it
// with --etcd-cacert, --etcd-cert and --etcd-key; a daemon without a client
// certificate, or one whose --etcd-cacert did not sign the members'
// certificate, does not start, even when the host's system pool
// (SSL_CERT_FILE) trusts that CA. When host 1 rotates the unlock key, host
// 2 locks itself instead of wrapping keys with the old one.
func TestMultiHostEtcdTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := newPKI(t, dir, "etcd")
	other := newPKI(t, dir, "other")
	srvCert, srvKey := ca.leaf(t, "etcd-member")
	cliCert, cliKey := ca.leaf(t, "secretd-client")
	etcd := etcdtest.StartTLS(t, 1, etcdtest.TLS{CertFile: srvCert, KeyFile: srvKey, ClientCA: ca.caFile})
	tlsFlags := []string{"--store", etcd.URL(), "--etcd-cacert", ca.caFile, "--etcd-cert", cliCert, "--etcd-key", cliKey, "--autolock"}

	d1 := startTestDaemon(t, append([]string{"--host-id", "tls1"}, tlsFlags...)...)
	key1 := d1.mustCLI("", "unlock-key", "-q")
	d2 := startTestDaemon(t, append([]string{"--host-id", "tls2"}, tlsFlags...)...)
	if !d2.status(t).Locked {
		t.Fatalf("a second host on an autolocked store started unlocked")
	}
	d2.mustCLI(key1+"\n", "unlock")
	d1.mustCLI("over-tls", "secret", "create", "tlsshared", "-")
	name := d2.ctrName("tls")
	if got := mustDocker(t, d2.runArgs("tlsshared", []string{"--rm", "--name", name}, "cat /run/secrets/tlsshared")...); got != "over-tls" {
		t.Fatalf("a container of host 2 reads %q from a secret host 1 created over TLS, want over-tls", got)
	}

	// Host 1 rotates the unlock key: host 2, holding the old one, locks
	// itself, and its key operations wait for the new key.
	key2 := d1.mustCLI("", "unlock-key", "--rotate", "-q")
	waitFor(t, 10*time.Second, "host 2 to lock itself after host 1 rotated the unlock key", func() bool { return d2.status(t).Locked })
	if r := d2.cli("", "key", "rotate"); r.code == 0 {
		t.Fatalf("key rotate on host 2 after the unlock key was rotated on host 1: %s", r)
	}
	if r := d2.cli(key1+"\n", "unlock"); r.code == 0 || !strings.Contains(r.stderr, "invalid unlock key") {
		t.Fatalf("unlock host 2 with the replaced key: %s", r)
	}
	d2.mustCLI(key2+"\n", "unlock")
	d2.mustCLI("", "key", "rotate")
	// Host 1 takes up the KEK host 2 rotated to, and the new unlock key
	// still opens the store on a restart.
	if got := mustDocker(t, d1.runArgs("tlsshared", []string{"--rm", "--name", d1.ctrName("tls")}, "cat /run/secrets/tlsshared")...); got != "over-tls" {
		t.Fatalf("after host 2 rotated the KEK a container of host 1 reads %q, want over-tls", got)
	}
	d1.stop()
	d1.start()
	d1.mustCLI(key2+"\n", "unlock")
	if out := d1.log() + d1.stdout() + d2.log() + d2.stdout(); strings.Contains(out, key1) || strings.Contains(out, key2) {
		t.Fatalf("an unlock key reached a daemon's output")
	}

	// etcd requires a client certificate.
	if r := daemonOnce(t, nil, 30*time.Second, "--store", etcd.URL(), "--etcd-cacert", ca.caFile, "--autolock"); r.code == 0 {
		t.Errorf("a daemon without a client certificate reached etcd: %s", r)
	}
	// The members' CA is in the system pool only: --etcd-cacert names another.
	r := daemonOnce(t, []string{"SSL_CERT_FILE=" + ca.caFile}, 30*time.Second,
		"--store", etcd.URL(), "--etcd-cacert", other.caFile, "--etcd-cert", cliCert, "--etcd-key", cliKey, "--autolock")
	if r.code == 0 {
		t.Errorf("a daemon trusted etcd members whose CA is only in the system pool: %s", r)
	} else if !strings.Contains(r.stderr, "etcd") {
		t.Errorf("the refusal does not mention etcd: %s", r)
	}
}
