package client

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestConnectErrorPermission: a socket the user may not open gets told how
// to get access, not asked whether the daemon runs.
func TestConnectErrorPermission(t *testing.T) {
	denied := &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", syscall.EACCES)}
	err := connectError("unix:///run/secretd/secretd.sock", denied)
	want := "permission denied on secretd's socket /run/secretd/secretd.sock: run the command as root, " +
		"or have the daemon started with --group GROUP and join that group"
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("permission denied:\n got %s\nwant %s (...)", err, want)
	}
	if !errors.Is(err, syscall.EACCES) {
		t.Errorf("%v does not wrap EACCES", err)
	}
	if strings.Contains(err.Error(), "is the daemon running") {
		t.Errorf("permission denied asks whether the daemon runs: %s", err)
	}
}

// TestConnectErrorNoDaemon: a socket nobody listens on still asks whether
// the daemon runs, through the real client.
func TestConnectErrorNoDaemon(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	c, err := New("unix://"+sock, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Ping(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), "cannot connect to secretd at unix://"+sock+": is the daemon running?") {
		t.Errorf("no daemon: %v", err)
	}
}
