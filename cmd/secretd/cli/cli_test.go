package cli

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secretd/secretd/api/client"
)

// TestDefaultHost: root talks to the system daemon; a user to their own
// rootless daemon, whose socket is named even before it exists so the
// error says where the CLI looked.
func TestDefaultHost(t *testing.T) {
	rt := t.TempDir()
	own := "unix://" + filepath.Join(rt, "secretd", "secretd.sock")
	if got := defaultHost(0, rt); got != client.DefaultHost {
		t.Errorf("root: got %s, want %s", got, client.DefaultHost)
	}
	if got := defaultHost(1000, ""); got != client.DefaultHost {
		t.Errorf("user without XDG_RUNTIME_DIR: got %s, want %s", got, client.DefaultHost)
	}
	if err := os.MkdirAll(filepath.Join(rt, "secretd"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(strings.TrimPrefix(own, "unix://"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := defaultHost(1000, rt); got != own {
		t.Errorf("user with a rootless daemon: got %s, want %s", got, own)
	}
}

// TestClientCertNeedsCA: --tlscert and --tlskey without --tlscacert would
// trust the system's CAs for the daemon: refused before any connection.
func TestClientCertNeedsCA(t *testing.T) {
	c := NewCli(nil, nil, nil)
	c.Hosts = []string{"tcp://127.0.0.1:1"}
	c.TLSCert, c.TLSKey = "cert.pem", "key.pem"
	if _, err := c.Client(); err == nil || !strings.Contains(err.Error(), "--tlscert and --tlskey need --tlscacert") {
		t.Errorf("a client certificate without a CA: %v", err)
	}
	// The Go client refuses a TLS configuration without a CA pool too.
	if _, err := client.New("tcp://127.0.0.1:1", &tls.Config{}); err == nil || !strings.Contains(err.Error(), "names no CA") {
		t.Errorf("client.New with no RootCAs: %v", err)
	}
}

// TestDefaultHostRefusesOpenRuntimeDir: the user's own socket is not used
// from an $XDG_RUNTIME_DIR that others may write to.
func TestDefaultHostRefusesOpenRuntimeDir(t *testing.T) {
	rt := t.TempDir()
	if _, err := checkedDefaultHost(1000, rt); err != nil {
		t.Fatalf("a private runtime dir: %v", err)
	}
	if err := os.Chmod(rt, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := checkedDefaultHost(1000, rt); err == nil || !strings.Contains(err.Error(), "has mode 0777: others may write to it") {
		t.Errorf("a world-writable runtime dir: %v", err)
	}
	if got, err := checkedDefaultHost(0, rt); err != nil || got != client.DefaultHost {
		t.Errorf("root does not use the runtime dir: %s, %v", got, err)
	}
}
