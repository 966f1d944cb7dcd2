package e2e

import (
	"crypto/tls"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// impostor is a TLS server whose certificate only the system pool vouches
// for; it counts the handshakes clients complete with it.
type impostor struct {
	addr       string
	handshakes atomic.Int32
}

func startImpostor(t *testing.T, system *pki) *impostor {
	t.Helper()
	certFile, keyFile := system.leaf(t, "impostor")
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.RequestClientCert})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	imp := &impostor{addr: l.Addr().String()}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if c.(*tls.Conn).Handshake() == nil {
					imp.handshakes.Add(1)
					buf := make([]byte, 4096)
					c.Read(buf)
				}
			}(c)
		}
	}()
	return imp
}

// TestTLSClientCertNeedsCA: a client certificate without a CA file would
// check the server against the system's CAs, so any server they vouch for
// would get the request and its secret. The CLI (--tlscert/--tlskey) and
// the daemon's etcd client (--etcd-cert/--etcd-key) refuse that with a
// clear error, before connecting anywhere.
func TestTLSClientCertNeedsCA(t *testing.T) {
	dir := t.TempDir()
	good := newPKI(t, dir, "good")
	system := newPKI(t, dir, "system")
	t.Setenv("SSL_CERT_FILE", system.caFile) // every process below inherits it
	cliCert, cliKey := good.leaf(t, "client")
	imp := startImpostor(t, system)

	r := runCmd(t, nil, "canary-impostor-bait", binary, "-H", "tcp://"+imp.addr, "--tlscert", cliCert, "--tlskey", cliKey, "secret", "create", "bait", "-")
	if r.code == 0 || !strings.Contains(r.stderr, "--tlscert and --tlskey need --tlscacert") {
		t.Errorf("the CLI with a client certificate and no CA: want refused, got %s", r)
	}
	if n := imp.handshakes.Load(); n != 0 {
		t.Fatalf("the CLI completed %d TLS handshakes with a server only the system CAs vouch for", n)
	}

	r = daemonOnce(t, nil, 20*time.Second, "--store", "etcd://"+imp.addr, "--etcd-cert", cliCert, "--etcd-key", cliKey)
	if r.code == 0 || !strings.Contains(r.stderr, "--etcd-cert and --etcd-key need --etcd-cacert") {
		t.Errorf("the daemon with an etcd client certificate and no CA: want refused, got %s", r)
	}
	if n := imp.handshakes.Load(); n != 0 {
		t.Fatalf("the etcd client completed %d TLS handshakes with a server only the system CAs vouch for", n)
	}
}
