package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

// TestWrite replaces the file whole, with mode 0600, and leaves no
// temporary behind; a write that cannot happen leaves the old content.
func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	for _, w := range []func(string, []byte) error{Write, WriteUnsynced} {
		if err := os.WriteFile(p, []byte("old content, longer"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := w(p, []byte("new")); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil || string(b) != "new" {
			t.Errorf("read %q, %v", b, err)
		}
		if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
			t.Errorf("mode %v", st.Mode().Perm())
		}
		if _, err := os.Stat(p + ".tmp"); !os.IsNotExist(err) {
			t.Errorf("temporary left: %v", err)
		}
	}
	// The target is a directory: the rename fails, nothing changes.
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o700)
	os.WriteFile(filepath.Join(sub, "x"), nil, 0o600)
	if err := Write(sub, []byte("x")); err == nil {
		t.Error("replaced a non-empty directory")
	}
	if _, err := os.Stat(sub + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary left after a failed write: %v", err)
	}
}
