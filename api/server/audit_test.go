package server_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secretd/secretd/api/client"
	"github.com/secretd/secretd/api/server"
	"github.com/secretd/secretd/internal/audit"
	"github.com/secretd/secretd/internal/store"
	"github.com/secretd/secretd/internal/store/bolt"
)

type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type errCounter struct {
	mu    sync.Mutex
	kinds []string
}

func (c *errCounter) Error(op string, err error) {
	c.mu.Lock()
	c.kinds = append(c.kinds, op)
	c.mu.Unlock()
}

// auditEnv is a server with an audit trail and failure counter.
func auditEnv(t *testing.T, autolock bool, tasks *fakeTasks) (*server.Server, *store.Store, string, *lockedBuf, *errCounter) {
	t.Helper()
	dir := t.TempDir()
	b, err := bolt.Open(filepath.Join(dir, "secrets.db"))
	if err != nil {
		t.Fatal(err)
	}
	st, key, err := store.Open(b, store.Config{KeyFile: filepath.Join(dir, "key"), Autolock: autolock})
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	trail, errs := &lockedBuf{}, &errCounter{}
	srv := server.New(server.Config{Store: st, KeyFile: filepath.Join(dir, "key"), Tasks: tasks, Version: "test",
		Audit: audit.New(trail, nil), Metrics: errs})
	return srv, st, key, trail, errs
}

func trailLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// TestAuditTrail drives every audited API action over a unix socket and
// checks the trail names each with the peer's credentials and never holds
// a secret's value.
func TestAuditTrail(t *testing.T) {
	tasks := &fakeTasks{}
	srv, st, unlockKey, trail, errs := auditEnv(t, true, tasks)
	c := serveUnix(t, srv)
	ctx := context.Background()
	const v1, v2 = "audit-canary-value-1-a8e2", "audit-canary-value-2-51f0"

	if _, err := c.SecretCreate(ctx, "db", nil, []byte(v1)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SecretUpdate(ctx, "db", []byte(v2), 5); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UnlockKey(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RotateKey(ctx); err != nil {
		t.Fatal(err)
	}
	tasks.set(map[string][]string{"db": {"web"}}, nil)
	if err := c.SecretRemove(ctx, "db"); err == nil {
		t.Fatal("rm of a used secret succeeded")
	}
	tasks.set(nil, nil)
	if err := c.SecretRemove(ctx, "db@1"); err != nil {
		t.Fatal(err)
	}
	if err := c.SecretRemove(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	if err := c.SecretRemove(ctx, "nope"); err == nil {
		t.Fatal("rm of a missing secret succeeded")
	}
	if err := st.Lock(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SecretCreate(ctx, "while-locked", nil, []byte(v1)); !client.IsLocked(err) {
		t.Fatalf("create while locked: %v", err)
	}
	if err := c.Unlock(ctx, "SECDKEY-1-wrong"); err == nil {
		t.Fatal("a wrong unlock key worked")
	}
	if err := c.Unlock(ctx, unlockKey); err != nil {
		t.Fatal(err)
	}

	type want struct{ event, action, secret string }
	wants := []want{
		{audit.SecretCreate, "", "db"},
		{audit.SecretUpdate, "", "db"},
		{audit.UnlockKeyRead, "", ""},
		{audit.KeyRotate, "", ""},
		{audit.Denied, audit.SecretRemove, "db"},
		{audit.SecretVersionRemove, "", "db"},
		{audit.SecretRemove, "", "db"},
		// rm of a missing secret is an error, not a refusal: no line.
		{audit.Denied, audit.SecretCreate, "while-locked"},
		{audit.Denied, audit.StoreUnlock, ""},
		{audit.StoreUnlock, "", ""},
	}
	got := trailLines(t, trail.String())
	if len(got) != len(wants) {
		t.Fatalf("%d audit lines, want %d:\n%s", len(got), len(wants), trail.String())
	}
	for i, w := range wants {
		g := got[i]
		if g["event"] != w.event || (w.action != "" && g["action"] != w.action) || (w.secret != "" && g["secret"] != w.secret) {
			t.Errorf("line %d: %v, want %+v", i, g, w)
		}
		actor, _ := g["actor"].(map[string]any)
		if actor == nil || actor["uid"] != float64(os.Getuid()) || actor["gid"] != float64(os.Getgid()) || actor["pid"] != float64(os.Getpid()) {
			t.Errorf("line %d: actor %v, want this process's uid, gid and pid", i, g["actor"])
		}
	}
	if got[1]["version"] != 2.0 || got[5]["version"] != 1.0 || got[3]["generation"] != 2.0 {
		t.Errorf("versions or generation missing: %v %v %v", got[1], got[5], got[3])
	}
	if !strings.Contains(got[4]["reason"].(string), "in use by the following container: web") {
		t.Errorf("in-use refusal reason %v", got[4]["reason"])
	}
	for _, v := range []string{v1, v2, unlockKey} {
		if strings.Contains(trail.String(), v) {
			t.Errorf("the trail holds %q", v)
		}
	}
	errs.mu.Lock()
	if len(errs.kinds) != 4 { // in use, not found, locked, bad key
		t.Errorf("failures counted: %v, want 4", errs.kinds)
	}
	errs.mu.Unlock()
}

// TestAuditTLSActor names a TLS client by its certificate's common name.
func TestAuditTLSActor(t *testing.T) {
	srv, _, _, trail, _ := auditEnv(t, false, nil)
	ca, caKey := newCert(t, "test-ca", nil, nil)
	srvCert, srvKey := newCert(t, "127.0.0.1", ca, caKey)
	cliCert, cliKey := newCert(t, "deploy-bot", ca, caKey)
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
	defer func() { cancel(); <-done }()
	c, err := client.New("tcp://"+l.Addr().String(), &tls.Config{
		RootCAs: pool, Certificates: []tls.Certificate{{Certificate: [][]byte{cliCert.Raw}, PrivateKey: cliKey}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.SecretCreate(ctx, "tls-made", nil, []byte("x")); err != nil {
		t.Fatal(err)
	}
	got := trailLines(t, trail.String())
	if len(got) != 1 || got[0]["actor"].(map[string]any)["cn"] != "deploy-bot" {
		t.Errorf("trail %s, want one line by cn deploy-bot", trail.String())
	}
}

func newCert(t *testing.T, cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if ip := net.ParseIP(cn); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	signer, signerKey := tmpl, key
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	} else {
		signer, signerKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// TestStatusProcessCounts reports the daemon process's goroutines and
// open file descriptors.
func TestStatusProcessCounts(t *testing.T) {
	srv, _, _, _, _ := auditEnv(t, false, nil)
	c := serveUnix(t, srv)
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Goroutines < 2 || st.OpenFDs < 3 {
		t.Errorf("status goroutines %d, open fds %d: want real counts", st.Goroutines, st.OpenFDs)
	}
}
