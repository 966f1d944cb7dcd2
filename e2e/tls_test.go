package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// pki writes a CA and a leaf certificate signed by it into dir.
type pki struct {
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	dir    string
	caFile string
}

func newPKI(t *testing.T, dir, name string) *pki {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p := &pki{caCert: cert, caKey: key, dir: dir, caFile: filepath.Join(dir, name+"-ca.pem")}
	writePEM(t, p.caFile, "CERTIFICATE", der)
	return p
}

// leaf issues a certificate for 127.0.0.1 usable by servers and clients.
func (p *pki) leaf(t *testing.T, name string) (certFile, keyFile string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(p.dir, name+".pem"), filepath.Join(p.dir, name+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", kder)
	return certFile, keyFile
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestTCPNeedsMutualTLS serves the API on loopback TCP with mutual TLS: a
// client with a certificate of the daemon's CA works, one from another CA
// or with none is refused.
func TestTCPNeedsMutualTLS(t *testing.T) {
	dir := t.TempDir()
	good := newPKI(t, dir, "good")
	evil := newPKI(t, dir, "evil")
	srvCert, srvKey := good.leaf(t, "server")
	cliCert, cliKey := good.leaf(t, "client")
	evilCert, evilKey := evil.leaf(t, "intruder")
	addr := freePort(t)

	d := newDaemon(t)
	d.AddArgs("-H", "tcp://"+addr, "--tlscacert", good.caFile, "--tlscert", srvCert, "--tlskey", srvKey)
	d.start()

	tcp := func(stdin string, ca, cert, key string, args ...string) result {
		base := []string{"-H", "tcp://" + addr, "--tlscacert", ca, "--tlscert", cert, "--tlskey", key}
		return runCmd(t, nil, stdin, binary, append(base, args...)...)
	}
	if r := tcp("over-tls", good.caFile, cliCert, cliKey, "secret", "create", "remote", "-"); r.code != 0 {
		t.Fatalf("create over mutual TLS: %s", r)
	}
	if r := tcp("", good.caFile, cliCert, cliKey, "secret", "ls", "--format", "{{.Name}}"); strings.TrimSpace(r.stdout) != "remote" {
		t.Fatalf("ls over mutual TLS: %s", r)
	}
	if r := tcp("", good.caFile, evilCert, evilKey, "secret", "ls"); r.code == 0 {
		t.Fatalf("a certificate from another CA was accepted: %s", r)
	}
	if r := runCmd(t, nil, "", binary, "-H", "tcp://"+addr, "secret", "ls"); r.code == 0 || !strings.Contains(r.stderr, "tcp needs TLS") {
		t.Fatalf("a client without TLS: %s", r)
	}
	// The unix socket still answers next to the TCP listener.
	if got := d.mustCLI("", "secret", "ls", "--format", "{{.Name}}"); got != "remote" {
		t.Fatalf("unix socket: %q", got)
	}
	st, err := os.Stat(d.sock)
	if err != nil || st.Mode().Perm() != 0o660 {
		t.Fatalf("API socket mode: %v %v", st.Mode(), err)
	}
}

// TestTLSTrustsOnlyGivenCA: a CA the host trusts for the web (here the only
// CA in SSL_CERT_FILE, Go's system pool) vouches for nobody. The listener
// refuses its client certificates, and the CLI refuses a server certificate
// it signed, when --tlscacert names another CA.
func TestTLSTrustsOnlyGivenCA(t *testing.T) {
	dir := t.TempDir()
	good := newPKI(t, dir, "good")
	system := newPKI(t, dir, "system")
	t.Setenv("SSL_CERT_FILE", system.caFile) // the daemon and every CLI run below inherit it
	srvCert, srvKey := good.leaf(t, "server")
	cliCert, cliKey := good.leaf(t, "client")
	sysCert, sysKey := system.leaf(t, "system-client")
	addr := freePort(t)

	d := newDaemon(t)
	d.AddArgs("-H", "tcp://"+addr, "--tlscacert", good.caFile, "--tlscert", srvCert, "--tlskey", srvKey)
	d.start()
	d.mustCLI("canary-tls-value", "secret", "create", "held", "-")

	tcp := func(stdin, addr, cert, key string, args ...string) result {
		base := []string{"-H", "tcp://" + addr, "--tlscacert", good.caFile, "--tlscert", cert, "--tlskey", key}
		return runCmd(t, nil, stdin, binary, append(base, args...)...)
	}
	if r := tcp("", addr, cliCert, cliKey, "secret", "ls", "--format", "{{.Name}}"); r.code != 0 || strings.TrimSpace(r.stdout) != "held" {
		t.Fatalf("a client certificate of --tlscacert's CA: %s", r)
	}
	if r := tcp("x", addr, sysCert, sysKey, "secret", "create", "intruder", "-"); r.code == 0 {
		t.Fatalf("the listener accepted a client certificate from a CA only in the system pool: %s", r)
	}
	if r := tcp("", addr, sysCert, sysKey, "unlock-key", "-q"); r.code == 0 {
		t.Fatalf("a system-pool client certificate reached the unlock key: %s", r)
	}
	if got := d.mustCLI("", "secret", "ls", "--format", "{{.Name}}"); got != "held" {
		t.Fatalf("after the refused requests the store holds %q, want only held", got)
	}

	// A server whose certificate only the system pool vouches for: the CLI
	// must not send it a request.
	sysSrvCert, sysSrvKey := system.leaf(t, "impostor")
	pair, err := tls.LoadX509KeyPair(sysSrvCert, sysSrvKey)
	if err != nil {
		t.Fatal(err)
	}
	var asked atomic.Bool
	impostor := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Store(true)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("[]"))
	}))
	impostor.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	impostor.StartTLS()
	defer impostor.Close()
	impAddr := strings.TrimPrefix(impostor.URL, "https://")
	r := tcp("impostor-bait", impAddr, cliCert, cliKey, "secret", "create", "bait", "-")
	if r.code == 0 || asked.Load() || !strings.Contains(r.stderr, "certificate") {
		t.Fatalf("the CLI trusted a server certificate from a CA only in the system pool (request reached it: %v): %s", asked.Load(), r)
	}
}
