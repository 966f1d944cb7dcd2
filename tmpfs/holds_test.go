package tmpfs

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestHolds(t *testing.T) {
	root := testRoot(t)
	set := []File{
		{Path: "a", Data: []byte("a1"), UID: 5, GID: 6, Mode: 0o400},
		{Path: "sub/c", Data: []byte("c1"), Mode: 0o444},
	}
	with := func(change func(fs []File) []File) []File {
		c := make([]File, len(set))
		copy(c, set)
		return change(c)
	}
	dir := filepath.Join(root, "m")
	if err := Mount(dir, set, Options{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		files []File
		want  bool
	}{
		{"the same set", set, true},
		{"the same set in another order", []File{set[1], set[0]}, true},
		{"other content of the same size", with(func(fs []File) []File { fs[0].Data = []byte("a2"); return fs }), false},
		{"other content and size", with(func(fs []File) []File { fs[0].Data = []byte("a22"); return fs }), false},
		{"another mode", with(func(fs []File) []File { fs[0].Mode = 0o440; return fs }), false},
		{"another uid", with(func(fs []File) []File { fs[0].UID = 7; return fs }), false},
		{"another gid", with(func(fs []File) []File { fs[0].GID = 7; return fs }), false},
		{"a file fewer", set[:1], false},
		{"a file more", append(with(func(fs []File) []File { return fs }), File{Path: "b", Data: []byte("b"), Mode: 0o444}), false},
		{"another path", with(func(fs []File) []File { fs[1].Path = "sub/d"; return fs }), false},
		{"nothing", nil, false},
	} {
		got, err := Holds(dir, tc.files)
		if err != nil || got != tc.want {
			t.Errorf("%s: Holds = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}

	// What an interrupted Update leaves is not the set, even when the
	// visible files are right: a generation beside the current one, or a
	// visible name still on the old generation's file.
	gen, _ := currentGen(dir)
	withWritable(t, dir, func() {
		if err := os.Mkdir(filepath.Join(dir, "..2001_01_01_00_00_00.000000000"), 0o755); err != nil {
			t.Fatal(err)
		}
	})
	if got, err := Holds(dir, set); got || err != nil {
		t.Errorf("with a second generation: Holds = %v, %v", got, err)
	}
	withWritable(t, dir, func() {
		os.Remove(filepath.Join(dir, "..2001_01_01_00_00_00.000000000"))
		copyFile(t, filepath.Join(dir, gen, "a"), filepath.Join(dir, "a.copy"))
		if err := os.Rename(filepath.Join(dir, "a.copy"), filepath.Join(dir, "a")); err != nil {
			t.Fatal(err)
		}
	})
	if got, err := Holds(dir, set); got || err != nil {
		t.Errorf("with a visible file off the generation: Holds = %v, %v", got, err)
	}
	// Update repairs it, and then it holds the set again.
	if err := Update(dir, set); err != nil {
		t.Fatal(err)
	}
	if got, err := Holds(dir, set); !got || err != nil {
		t.Errorf("after Update: Holds = %v, %v", got, err)
	}
	withWritable(t, dir, func() {
		if err := os.Mkdir(filepath.Join(dir, "extra"), 0o755); err != nil {
			t.Fatal(err)
		}
	})
	if got, err := Holds(dir, set); got || err != nil {
		t.Errorf("with an extra directory: Holds = %v, %v", got, err)
	}

	// A directory this package did not lay out is an error, not a match.
	plain := filepath.Join(root, "plain")
	if err := os.Mkdir(plain, 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := Holds(plain, set); got || err == nil {
		t.Errorf("a plain directory: Holds = %v, %v; want an error", got, err)
	}
	if _, err := Wipe(dir); err != nil {
		t.Fatal(err)
	}
}

// withWritable runs change with the read-only mount at dir made writable.
func withWritable(t *testing.T, dir string, change func()) {
	t.Helper()
	if err := unix.Mount("", dir, "", unix.MS_REMOUNT|mountFlags, ""); err != nil {
		t.Fatal(err)
	}
	change()
	if err := makeReadOnly(dir); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, fi.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
	// The same owner and mode: only the inode differs.
	st := fi.Sys().(*syscall.Stat_t)
	if err := os.Lchown(to, int(st.Uid), int(st.Gid)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(to, fi.Mode().Perm()); err != nil {
		t.Fatal(err)
	}
}
