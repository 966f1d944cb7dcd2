package compose

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReadSecretFile: a `file:` secret is read from a regular file smaller
// than 500 KiB, through a symlink as Docker reads it; a FIFO, a device, a
// directory, a symlink to any of them and a file of 500 KiB or more are
// refused before a byte is read, and never block.
func TestReadSecretFile(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "site.key")
	if err := os.WriteFile(plain, []byte("key-one"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.key")
	if err := os.Symlink(plain, link); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{plain, link} {
		if got, err := ReadSecretFile(p); err != nil || string(got) != "key-one" {
			t.Errorf("%s: %q, %v", p, got, err)
		}
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	fifoLink := filepath.Join(dir, "fifo.key")
	devLink := filepath.Join(dir, "zero.key")
	if err := os.Symlink(fifo, fifoLink); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", devLink); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.key")
	if err := os.WriteFile(big, make([]byte, MaxFileSize), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, want string }{
		{fifo, "is a named pipe (FIFO), not a regular file"},
		{fifoLink, "is a named pipe (FIFO), not a regular file"},
		{devLink, "is a character device, not a regular file"},
		{dir, "is a directory, not a regular file"},
		{big, "is 512000 bytes: a secret must be smaller than 500 KiB"},
		{filepath.Join(dir, "absent"), "no such file or directory"},
	} {
		done := make(chan error, 1)
		go func() {
			_, err := ReadSecretFile(c.path)
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: %v, want %q", c.path, err, c.want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: still reading after 10s", c.path)
		}
	}
	if got, err := ReadSecretFile(filepath.Join(dir, "site.key")); err != nil || string(got) != "key-one" {
		t.Errorf("again: %q, %v", got, err)
	}
}
