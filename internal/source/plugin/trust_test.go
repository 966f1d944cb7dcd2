package plugin_test

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
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/secrets"

	"github.com/secretd/secretd/internal/source"
)

// testCA is a CA that signs certificates for 127.0.0.1.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string
}

func newCA(t *testing.T, dir, name string) *testCA {
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
	ca := &testCA{cert: cert, key: key, file: filepath.Join(dir, name+"-ca.pem")}
	if err := os.WriteFile(ca.file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return ca
}

func (ca *testCA) leaf(t *testing.T) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "plugin"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestPluginTLS: a spec with a TLS setup is always called over TLS, tcp://
// too (dockerd sends plain HTTP there), and only its CA may vouch for the
// plugin. A TLS setup without a CA file, or one that turns verification
// off, is refused before anything is sent.
func TestPluginTLS(t *testing.T) {
	r := dirs(t)
	ca := newCA(t, r.SpecsDirs[0], "plugin")
	other := newCA(t, r.SpecsDirs[0], "other")
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{ca.leaf(t)}})
	if err != nil {
		t.Fatal(err)
	}
	serve(t, l, secrets.NewHandler(&fakeDriver{}))
	addr := l.Addr().String()
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(r.SpecsDirs[0], name+".json"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	write("tlstcp", `{"Addr": "tcp://`+addr+`", "TLSConfig": {"CAFile": "`+ca.file+`"}}`)
	if v, err := fetch(t, r, "tlstcp", "db"); err != nil || string(v.Data) != "CANARY-plugin-db" {
		t.Errorf("a tcp:// spec with a TLS setup: %q, %v; want the value over TLS", v.Data, err)
	}
	write("tlshttps", `{"Addr": "https://`+addr+`", "TLSConfig": {"CAFile": "`+ca.file+`"}}`)
	if _, err := fetch(t, r, "tlshttps", "db"); err != nil {
		t.Errorf("an https:// spec with its CA: %v", err)
	}

	write("wrongca", `{"Addr": "tcp://`+addr+`", "TLSConfig": {"CAFile": "`+other.file+`"}}`)
	_, err = fetch(t, r, "wrongca", "db")
	wantErr(t, err, source.ErrUnavailable, "certificate")

	write("noca", `{"Addr": "tcp://`+addr+`", "TLSConfig": {}}`)
	_, err = fetch(t, r, "noca", "db")
	wantErr(t, err, source.ErrUnavailable, "names no CAFile")

	write("insecure", `{"Addr": "tcp://`+addr+`", "TLSConfig": {"CAFile": "`+ca.file+`", "InsecureSkipVerify": true}}`)
	_, err = fetch(t, r, "insecure", "db")
	wantErr(t, err, source.ErrUnavailable, "InsecureSkipVerify would send secrets to any server")

	write("httpsbare", `{"Addr": "https://`+addr+`"}`)
	_, err = fetch(t, r, "httpsbare", "db")
	wantErr(t, err, source.ErrUnavailable, "an https address needs a TLSConfig")
	if err := os.WriteFile(filepath.Join(r.SpecsDirs[0], "httpsspec.spec"), []byte("https://"+addr), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = fetch(t, r, "httpsspec", "db")
	wantErr(t, err, source.ErrUnavailable, "an https address needs a .json spec")
}

// TestPluginFilesRootOnly: a socket or spec file that another user owns,
// or that group (other than root's) or others may write, is refused, and
// so is one in such a directory: whoever could replace it would get the
// secrets asked of the plugin.
func TestPluginFilesRootOnly(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files away")
	}
	r := dirs(t)
	sock := filepath.Join(r.SocketsDir, "owned.sock")
	servePlugin(t, sock, &fakeDriver{})
	if _, err := fetch(t, r, "owned", "db"); err != nil {
		t.Fatalf("a root-owned socket: %v", err)
	}
	spec := filepath.Join(r.SpecsDirs[0], "byspec.spec")
	if err := os.WriteFile(spec, []byte("unix://"+sock), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := fetch(t, r, "byspec", "db"); err != nil {
		t.Fatalf("a root-owned spec: %v", err)
	}
	for _, c := range []struct {
		name, plugin, path string
		prep               func(string) error
		want               string
	}{
		{"socket of another user", "owned", sock, func(p string) error { return os.Lchown(p, 65534, 65534) }, "is owned by uid 65534"},
		{"world-writable socket", "owned", sock, func(p string) error { return os.Chmod(p, 0o777) }, "has mode 0777"},
		{"socket writable by a group not root's", "owned", sock, func(p string) error {
			if err := os.Chown(p, 0, 65534); err != nil {
				return err
			}
			return os.Chmod(p, 0o770)
		}, "has mode 0770 (group 65534)"},
		{"spec of another user", "byspec", spec, func(p string) error { return os.Chown(p, 65534, 65534) }, "is owned by uid 65534"},
		{"world-writable spec", "byspec", spec, func(p string) error { return os.Chmod(p, 0o666) }, "has mode 0666"},
		{"spec in a world-writable directory", "byspec", filepath.Dir(spec), func(p string) error { return os.Chmod(p, 0o777) }, "has mode 0777"},
	} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.prep(c.path); err != nil {
			t.Fatal(err)
		}
		_, err = fetch(t, r, c.plugin, "db")
		wantErr(t, err, source.ErrUnavailable, c.want)
		os.Chown(c.path, 0, 0)
		os.Chmod(c.path, fi.Mode().Perm())
	}
	if _, err := fetch(t, r, "owned", "db"); err != nil {
		t.Fatalf("the socket put back: %v", err)
	}
}
