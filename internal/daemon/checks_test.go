package daemon

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPrivateDir(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(empty, 0o755)
	if err := privateDir("--data-root", empty, log); err != nil {
		t.Fatalf("an empty 0755 root: %v", err)
	}
	if st, _ := os.Stat(empty); st.Mode().Perm() != 0o700 {
		t.Fatalf("an empty root was left at %04o, want 0700", st.Mode().Perm())
	}
	full := filepath.Join(t.TempDir(), "full")
	if err := os.Mkdir(full, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(full, "secrets.db"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(full, 0o750)
	err := privateDir("--data-root", full, log)
	if err == nil || !strings.Contains(err.Error(), "--data-root "+full+" has mode 0750") {
		t.Fatalf("a group-readable root with a store in it: %v, want refused", err)
	}
	if st, _ := os.Stat(full); st.Mode().Perm() != 0o750 {
		t.Fatalf("a refused root was changed to %04o", st.Mode().Perm())
	}
	link := filepath.Join(t.TempDir(), "link")
	os.Symlink(empty, link)
	if err := privateDir("--mount-root", link, log); err == nil {
		t.Fatalf("a symlinked root was accepted")
	}
}

func TestCheckMountRoot(t *testing.T) {
	root := t.TempDir()
	id := strings.Repeat("ab", 32)
	for _, d := range []string{id, "spare.0123abcd", "adopted"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{id + ".task", "adopted.task", "spare.0123abcd.task.tmp"} {
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := checkMountRoot(root); err != nil {
		t.Fatalf("a mount root holding only secretd's entries: %v", err)
	}
	for _, foreign := range []string{"alice", "passwd"} {
		p := filepath.Join(root, foreign)
		if foreign == "alice" {
			os.Mkdir(p, 0o700)
		} else {
			os.WriteFile(p, []byte("root:x:0:0"), 0o644)
		}
		err := checkMountRoot(root)
		if err == nil || !strings.Contains(err.Error(), "did not make ("+foreign+")") {
			t.Fatalf("a mount root holding %s: %v, want refused naming it", foreign, err)
		}
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("the refused entry %s is gone: %v", foreign, err)
		}
		os.RemoveAll(p)
	}
}
