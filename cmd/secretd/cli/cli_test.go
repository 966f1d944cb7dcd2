package cli

import (
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
