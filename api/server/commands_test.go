package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secretd/secretd/api/client"
	"github.com/secretd/secretd/api/server"
	"github.com/secretd/secretd/internal/audit"
	"github.com/secretd/secretd/internal/source"
	"github.com/secretd/secretd/internal/source/shell"
	"github.com/secretd/secretd/internal/sourced"
	"github.com/secretd/secretd/internal/store"
	"github.com/secretd/secretd/internal/store/bolt"
)

// commandEnv is a server with the shell driver, an audit trail and a log,
// for the tests of who may name a command.
type commandEnv struct {
	srv   *server.Server
	st    *store.Store
	src   *sourced.Service
	trail *lockedBuf
	log   *lockedBuf
}

func newCommandEnv(t *testing.T, tlsCommands bool) commandEnv {
	t.Helper()
	dir := t.TempDir()
	b, err := bolt.Open(filepath.Join(dir, "secrets.db"))
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := store.Open(b, store.Config{KeyFile: filepath.Join(dir, "key")})
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := commandEnv{st: st, trail: &lockedBuf{}, log: &lockedBuf{}}
	logger := slog.New(slog.NewTextHandler(e.log, nil))
	sh := shell.New(shell.Config{})
	sh.Trust = shell.Trust{Host: "host-a"}
	sh.Log = logger
	e.src = &sourced.Service{Store: st, Log: logger, Host: "host-a", TLSCommands: tlsCommands,
		Drivers: &source.Drivers{Builtin: map[string]source.Provider{shell.Name: sh}}}
	e.srv = server.New(server.Config{Store: st, KeyFile: filepath.Join(dir, "key"), Version: "test",
		Sources: e.src, Audit: audit.New(e.trail, nil), Log: logger})
	return e
}

// serveTLS serves srv on a mutual-TLS listener and returns a client whose
// certificate says cn.
func serveTLS(t *testing.T, srv *server.Server, cn string) *client.Client {
	t.Helper()
	ca, caKey := newCert(t, "test-ca", nil, nil)
	srvCert, srvKey := newCert(t, "127.0.0.1", ca, caKey)
	cliCert, cliKey := newCert(t, cn, ca, caKey)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{srvCert.Raw}, PrivateKey: srvKey}},
		ClientAuth:   tls.RequireAndVerifyClientCert, ClientCAs: pool,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	c, err := client.New("tcp://"+l.Addr().String(), &tls.Config{
		RootCAs: pool, Certificates: []tls.Certificate{{Certificate: [][]byte{cliCert.Raw}, PrivateKey: cliKey}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); cancel(); <-done })
	return c
}

// TestTLSClientNamesNoCommand: a mutual-TLS client may not name a shell
// driver secret's own command (it would run as root) unless the daemon
// says so with --tls-secret-commands. The refusal is a 403, audited, and
// nothing runs; the host configuration's commands stay usable.
func TestTLSClientNamesNoCommand(t *testing.T) {
	ctx := context.Background()
	ran := filepath.Join(t.TempDir(), "ran")
	lookup := client.SourceSpec{Driver: "shell", Options: map[string]string{"lookup": "id > " + ran + "; printf v"}}

	e := newCommandEnv(t, false)
	c := serveTLS(t, e.srv, "deploy-bot")
	_, err := c.SecretCreateFromSource(ctx, "x", nil, lookup)
	var apiErr *client.Error
	if err == nil || !strings.Contains(err.Error(), "this daemon takes none from TLS clients") {
		t.Fatalf("a TLS client naming a lookup: %v, want refused", err)
	}
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 403 {
		t.Errorf("refusal status: %v, want 403", err)
	}
	if _, serr := os.Stat(ran); serr == nil {
		t.Fatal("the refused command ran")
	}
	if list, _ := e.st.List(store.Filter{}); len(list) != 0 {
		t.Errorf("a refused create stored %d secrets", len(list))
	}
	lines := trailLines(t, e.trail.String())
	if len(lines) != 1 || lines[0]["event"] != audit.Denied || lines[0]["action"] != audit.SecretCreate ||
		lines[0]["secret"] != "x" || lines[0]["actor"].(map[string]any)["cn"] != "deploy-bot" {
		t.Errorf("trail %s, want one denied secret.create by cn deploy-bot", e.trail.String())
	}

	// The daemon's flag lets TLS clients name commands; they are stamped
	// with this host.
	e = newCommandEnv(t, true)
	c = serveTLS(t, e.srv, "deploy-bot")
	if _, err := c.SecretCreateFromSource(ctx, "x", nil, lookup); err != nil {
		t.Fatalf("with --tls-secret-commands: %v", err)
	}
	if _, serr := os.Stat(ran); serr != nil {
		t.Errorf("the lookup did not run at create: %v", serr)
	}
	if sec, err := e.st.Get("x"); err != nil || sec.Source.CommandsBy != "host-a" {
		t.Errorf("stamp: %+v, %v; want host-a", sec.Source, err)
	}
}

// TestCreateFailureAuditedStderrLogged: a create whose command ran and
// failed is audited as secret.create.failed, nothing is kept, and what the
// command printed on stderr (which may be a root-only file) reaches the
// daemon's log only, never the caller.
func TestCreateFailureAuditedStderrLogged(t *testing.T) {
	e := newCommandEnv(t, false)
	c := serveUnix(t, e.srv)
	const canary = "CANARY-stderr-9d1e"
	_, err := c.SecretCreateFromSource(context.Background(), "x", nil,
		client.SourceSpec{Driver: "shell", Options: map[string]string{"lookup": "echo " + canary + " >&2; exit 1"}})
	if err == nil || strings.Contains(err.Error(), canary) || !strings.Contains(err.Error(), "the source failed (exit status 1): see the daemon log") {
		t.Fatalf("failed create: %v, want the source failed without its stderr", err)
	}
	if !strings.Contains(e.log.String(), canary) {
		t.Errorf("the daemon log lacks the command's stderr: %s", e.log.String())
	}
	lines := trailLines(t, e.trail.String())
	if len(lines) != 1 || lines[0]["event"] != audit.SecretCreateFailed || lines[0]["secret"] != "x" ||
		!strings.Contains(lines[0]["reason"].(string), "the source failed (exit status 1)") || strings.Contains(e.trail.String(), canary) {
		t.Errorf("trail %s, want one secret.create.failed without the stderr", e.trail.String())
	}
	if list, _ := e.st.List(store.Filter{}); len(list) != 0 {
		t.Errorf("a failed create stored %d secrets", len(list))
	}
}

// TestUnstampedCommandsNeverRun: a secret whose own commands nobody is
// recorded as naming (created before the stamp, by any API user) never
// runs them: not at Mount, not at rm, which removes the secret without its
// delete command rather than leave it stuck.
func TestUnstampedCommandsNeverRun(t *testing.T) {
	e := newCommandEnv(t, false)
	dir := t.TempDir()
	ran := filepath.Join(dir, "ran")
	sec, err := e.st.Create(store.Spec{Name: "old", Source: &store.SourceSpec{Driver: "shell", Stored: true,
		Options: map[string]string{"lookup": "touch " + ran + "; printf v", "store": "cat >/dev/null", "delete": "touch " + ran}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.src.Fetch(context.Background(), sec, source.Container{}); err == nil || !strings.Contains(err.Error(), "recreate the secret as root") {
		t.Errorf("mount of an unstamped lookup: %v", err)
	}
	c := serveUnix(t, e.srv)
	if err := c.SecretRemove(context.Background(), "old"); err != nil {
		t.Fatalf("rm: %v", err)
	}
	if _, err := os.Stat(ran); err == nil {
		t.Error("an unstamped command ran")
	}
	if !strings.Contains(e.log.String(), "secret removed without running its delete command") {
		t.Errorf("log: %s", e.log.String())
	}
}
