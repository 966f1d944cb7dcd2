package tmpfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting tmpfs needs root")
	}
}

// testRoot returns a fresh directory for mount points and guarantees that
// nothing stays mounted under it after the test, whatever happened.
func testRoot(t *testing.T) string {
	t.Helper()
	requireRoot(t)
	base := t.TempDir()
	// Registered after TempDir's own cleanup, so it runs before the removal.
	t.Cleanup(func() { unmountAllUnder(t, base) })
	return base
}

func unmountAllUnder(t *testing.T, base string) {
	t.Helper()
	for range 20 {
		entries, err := readMountinfo()
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		var left []string
		for _, e := range entries {
			if e.mountPoint == base || strings.HasPrefix(e.mountPoint, base+"/") {
				left = append(left, e.mountPoint)
			}
		}
		if len(left) == 0 {
			raw, err := os.ReadFile(mountinfoPath)
			if err != nil {
				t.Errorf("cleanup: %v", err)
			} else if bytes.Contains(raw, []byte(base)) {
				t.Errorf("cleanup: %s still appears in %s", base, mountinfoPath)
			}
			return
		}
		t.Errorf("test left %d mount(s) under %s: %q", len(left), base, left)
		for _, mp := range slices.Backward(left) {
			if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil {
				t.Errorf("cleanup: detach %s: %v", mp, err)
			}
		}
	}
	t.Errorf("cleanup: could not unmount everything under %s", base)
}

func entryFor(t *testing.T, dir string) mountEntry {
	t.Helper()
	m, err := mountAt(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m == nil {
		t.Fatalf("%s is not in %s", dir, mountinfoPath)
	}
	return *m
}

func optSet(s string) map[string]bool {
	out := make(map[string]bool)
	for o := range strings.SplitSeq(s, ",") {
		out[o] = true
	}
	return out
}

func checkReadOnly(t *testing.T, dir string, superToo bool) {
	t.Helper()
	m := entryFor(t, dir)
	if m.fsType != "tmpfs" {
		t.Errorf("fstype %q, want tmpfs", m.fsType)
	}
	opts := optSet(m.options)
	for _, o := range []string{"ro", "nosuid", "nodev", "noexec"} {
		if !opts[o] {
			t.Errorf("mount options %q lack %s", m.options, o)
		}
	}
	super := optSet(m.superOptions)
	if superToo && !super["ro"] {
		t.Errorf("super options %q lack ro", m.superOptions)
	}
	if super["noswap"] != NoswapSupported() {
		t.Errorf("super options %q: noswap present=%v, NoswapSupported()=%v", m.superOptions, super["noswap"], NoswapSupported())
	}
	for _, try := range []struct {
		what string
		fn   func() error
	}{
		{"create file", func() error { return os.WriteFile(filepath.Join(dir, "new"), []byte("x"), 0o644) }},
		{"mkdir", func() error { return os.Mkdir(filepath.Join(dir, "newdir"), 0o755) }},
		{"remove ..data", func() error { return os.Remove(filepath.Join(dir, dataLink)) }},
	} {
		if err := try.fn(); !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s in read-only mount: got %v, want EROFS", try.what, err)
		}
	}
}

func statOwner(t *testing.T, p string) (fs.FileMode, uint32, uint32) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fi.Mode(), st.Uid, st.Gid
}

// checkVisibleFile checks that f's visible path is a regular file (not a
// symlink) with f's content, owner and mode, and that it is the very inode
// of the current generation's copy.
func checkVisibleFile(t *testing.T, dir string, f File) {
	t.Helper()
	p := filepath.Join(dir, f.Path)
	fi, err := os.Lstat(p)
	if err != nil {
		t.Errorf("%s: %v", f.Path, err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != f.Mode || st.Uid != uint32(f.UID) || st.Gid != uint32(f.GID) {
		t.Errorf("%s: %v %d:%d, want regular %v %d:%d", f.Path, fi.Mode(), st.Uid, st.Gid, f.Mode, f.UID, f.GID)
	}
	if st.Nlink != 2 {
		t.Errorf("%s: link count %d, want 2 (generation and visible name)", f.Path, st.Nlink)
	}
	gen, err := currentGen(dir)
	if err != nil {
		t.Fatal(err)
	}
	if gi, err := os.Lstat(filepath.Join(dir, gen, f.Path)); err != nil || !os.SameFile(fi, gi) {
		t.Errorf("%s is not the inode of %s/%s (%v)", f.Path, gen, f.Path, err)
	}
	if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, f.Data) {
		t.Errorf("%s: content %q (%v), want %q", f.Path, got, err, f.Data)
	}
}

func TestMountLayoutContentAndFlags(t *testing.T) {
	dir := filepath.Join(testRoot(t), "parent", "m")
	files := []File{
		{Path: "a.txt", Data: []byte("alpha"), UID: 1000, GID: 1001, Mode: 0o400},
		{Path: "tls/key.pem", Data: bytes.Repeat([]byte("k"), 10000), UID: 1000, GID: 1000, Mode: 0o440},
		{Path: "tls/cert.pem", Data: []byte("cert"), Mode: 0o444},
		{Path: "deep/x/y/z", Data: []byte{}, UID: 7, GID: 8, Mode: 0o640},
	}
	if err := Mount(dir, files, Options{Size: 2 << 20}); err != nil {
		t.Fatal(err)
	}

	for _, f := range files {
		p := filepath.Join(dir, f.Path)
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, f.Data) {
			t.Errorf("%s: content %q, want %q", f.Path, got, f.Data)
		}
		mode, uid, gid := statOwner(t, p)
		if mode != f.Mode || uid != uint32(f.UID) || gid != uint32(f.GID) {
			t.Errorf("%s: mode %v owner %d:%d, want %v %d:%d", f.Path, mode, uid, gid, f.Mode, f.UID, f.GID)
		}
		checkVisibleFile(t, dir, f)
	}

	gen, err := os.Readlink(filepath.Join(dir, dataLink))
	if err != nil || !genRE.MatchString(gen) {
		t.Fatalf("..data -> %q (%v), want a generation name", gen, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{gen, dataLink, "a.txt", "deep", "tls"}; !slices.Equal(names, want) {
		t.Errorf("mount root holds %q, want %q", names, want)
	}
	for _, d := range []string{".", gen, gen + "/tls", gen + "/deep/x/y", "tls", "deep", "deep/x", "deep/x/y"} {
		mode, uid, gid := statOwner(t, filepath.Join(dir, d))
		if mode != fs.ModeDir|0o755 || uid != 0 || gid != 0 {
			t.Errorf("directory %s: %v %d:%d, want drwxr-xr-x root", d, mode, uid, gid)
		}
	}
	if mode, _, _ := statOwner(t, filepath.Dir(dir)); mode.Perm() != 0o700 {
		t.Errorf("created parent has mode %v, want 0700", mode)
	}

	checkReadOnly(t, dir, true)
	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("x"), 0); !errors.Is(err, syscall.EROFS) {
		t.Errorf("overwrite file: got %v, want EROFS", err)
	}
	if super := optSet(entryFor(t, dir).superOptions); !super["size=2048k"] {
		t.Errorf("super options %q lack size=2048k", entryFor(t, dir).superOptions)
	}

	got, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(files) {
		t.Errorf("Read returned %d files, want %d", len(got), len(files))
	}
	for _, f := range files {
		if !bytes.Equal(got[f.Path], f.Data) {
			t.Errorf("Read %s: %q", f.Path, got[f.Path])
		}
	}

	if res, err := Wipe(dir); err != nil || res.Lazy {
		t.Fatalf("Wipe: %+v %v", res, err)
	}
}

func TestDefaultSize(t *testing.T) {
	dir := filepath.Join(testRoot(t), "m")
	if err := Mount(dir, []File{{Path: "f", Data: []byte("x"), Mode: 0o444}}, Options{}); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("size=%dk", (sizeSlack+3*int64(os.Getpagesize()))/1024)
	if m := entryFor(t, dir); !optSet(m.superOptions)[want] {
		t.Errorf("super options %q lack %s", m.superOptions, want)
	}
	if _, err := Wipe(dir); err != nil {
		t.Fatal(err)
	}
}

func TestUpdate(t *testing.T) {
	dir := filepath.Join(testRoot(t), "m")
	if err := Mount(dir, []File{
		{Path: "a", Data: []byte("a1"), Mode: 0o444},
		{Path: "b", Data: []byte("b1"), Mode: 0o444},
		{Path: "sub/c", Data: []byte("c1"), Mode: 0o444},
	}, Options{}); err != nil {
		t.Fatal(err)
	}
	oldGen, _ := currentGen(dir)

	next := []File{
		{Path: "a", Data: []byte("a2"), UID: 5, GID: 6, Mode: 0o400},
		{Path: "d/e", Data: []byte("e2"), Mode: 0o444},
	}
	if err := Update(dir, next); err != nil {
		t.Fatal(err)
	}
	got, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "a2", "d/e": "e2"}
	if len(got) != len(want) {
		t.Errorf("Read after Update: %q", got)
	}
	for p, w := range want {
		if b, err := os.ReadFile(filepath.Join(dir, p)); err != nil || string(b) != w {
			t.Errorf("%s: %q %v, want %q", p, b, err, w)
		}
	}
	if mode, uid, gid := statOwner(t, filepath.Join(dir, "a")); mode != 0o400 || uid != 5 || gid != 6 {
		t.Errorf("a: %v %d:%d after Update", mode, uid, gid)
	}
	for _, f := range next {
		checkVisibleFile(t, dir, f)
	}
	for _, gone := range []string{"b", "sub"} {
		if _, err := os.Lstat(filepath.Join(dir, gone)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still present after Update: %v", gone, err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	newGen, _ := currentGen(dir)
	// The replaced generation is gone once Update returns.
	if wantNames := []string{newGen, dataLink, "a", "d"}; !slices.Equal(names, wantNames) {
		t.Errorf("mount root holds %q, want %q", names, wantNames)
	}
	checkReadOnly(t, dir, true)

	// A set may shrink to nothing and grow again.
	if err := Update(dir, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := Read(dir); err != nil || len(got) != 0 {
		t.Errorf("Read after empty Update: %q %v", got, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, oldGen)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("generation %s still present two Updates later: %v", oldGen, err)
	}
	if oldGen == newGen {
		t.Errorf("Update kept generation %s", oldGen)
	}
	if err := Update(dir, next); err != nil {
		t.Fatal(err)
	}
	checkReadOnly(t, dir, true)
	if _, err := Wipe(dir); err != nil {
		t.Fatal(err)
	}
}

// Each generation writes fresh inodes, even for unchanged content, and the
// visible names follow them; zeroing a retired generation must therefore
// never reach a visible file.
func TestVisibleFilesSurviveUpdates(t *testing.T) {
	dir := filepath.Join(testRoot(t), "m")
	set := func(v int) []File {
		return []File{
			{Path: "same", Data: []byte("unchanged content"), UID: 3, GID: 4, Mode: 0o440},
			{Path: "sub/same", Data: bytes.Repeat([]byte("s"), 5000), Mode: 0o444},
			{Path: "changing", Data: fmt.Appendf(nil, "version %d", v), Mode: 0o400},
			{Path: "sub/deeper/changing", Data: fmt.Appendf(nil, "deep version %d", v), UID: 9, GID: 9, Mode: 0o444},
		}
	}
	if err := Mount(dir, set(0), Options{}); err != nil {
		t.Fatal(err)
	}
	for _, f := range set(0) {
		checkVisibleFile(t, dir, f)
	}
	for v := 1; v <= 3; v++ {
		if err := Update(dir, set(v)); err != nil {
			t.Fatal(err)
		}
		for _, f := range set(v) {
			checkVisibleFile(t, dir, f)
		}
		got, err := Read(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range set(v) {
			if !bytes.Equal(got[f.Path], f.Data) {
				t.Errorf("after %d Updates, Read %s: %q", v, f.Path, got[f.Path])
			}
		}
		var gens int
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if genRE.MatchString(e.Name()) {
				gens++
			}
		}
		if gens != 1 {
			t.Errorf("after %d Updates: %d generations, want only the current one", v, gens)
		}
		checkReadOnly(t, dir, true)
	}
	if _, err := Wipe(dir); err != nil {
		t.Fatal(err)
	}
}

func visibleTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if strings.HasPrefix(rel, "..") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case d.IsDir():
			out = append(out, rel+"/")
		case d.Type().IsRegular():
			out = append(out, rel)
		default:
			out = append(out, rel+" ("+d.Type().String()+")")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestUpdateDropsFilesAndDirectories(t *testing.T) {
	dir := filepath.Join(testRoot(t), "m")
	f := func(p string) File { return File{Path: p, Data: []byte("data of " + p), Mode: 0o444} }
	if err := Mount(dir, []File{f("keep"), f("gone"), f("x/w"), f("x/y/z"), f("p/q/r")}, Options{}); err != nil {
		t.Fatal(err)
	}
	want := []string{"gone", "keep", "p/", "p/q/", "p/q/r", "x/", "x/w", "x/y/", "x/y/z"}
	if got := visibleTree(t, dir); !slices.Equal(got, want) {
		t.Errorf("after Mount: %q, want %q", got, want)
	}
	next := []File{f("keep"), f("x/w")}
	if err := Update(dir, next); err != nil {
		t.Fatal(err)
	}
	if got, want := visibleTree(t, dir), []string{"keep", "x/", "x/w"}; !slices.Equal(got, want) {
		t.Errorf("after dropping: %q, want %q", got, want)
	}
	for _, nf := range next {
		checkVisibleFile(t, dir, nf)
	}
	if err := Update(dir, []File{f("x/y/z")}); err != nil {
		t.Fatal(err)
	}
	if got, want := visibleTree(t, dir), []string{"x/", "x/y/", "x/y/z"}; !slices.Equal(got, want) {
		t.Errorf("after re-adding: %q, want %q", got, want)
	}
	checkVisibleFile(t, dir, f("x/y/z"))
	if err := Update(dir, nil); err != nil {
		t.Fatal(err)
	}
	if got := visibleTree(t, dir); len(got) != 0 {
		t.Errorf("after emptying: %q", got)
	}
	checkReadOnly(t, dir, true)
	if _, err := Wipe(dir); err != nil {
		t.Fatal(err)
	}
}

func TestUpdateChangesKind(t *testing.T) {
	dir := filepath.Join(testRoot(t), "m")
	f := func(p string) File { return File{Path: p, Data: []byte("data of " + p), UID: 1, GID: 2, Mode: 0o440} }
	sets := [][]File{
		{f("a"), f("d/e")},
		{f("a/b"), f("d")},       // file to directory and back
		{f("a"), f("d/e/f")},     // and again, deeper
		{f("a/b/c"), f("d/e/g")}, // directory kept, file under it becomes one
	}
	if err := Mount(dir, sets[0], Options{}); err != nil {
		t.Fatal(err)
	}
	for i, set := range sets {
		if i > 0 {
			if err := Update(dir, set); err != nil {
				t.Fatalf("Update to set %d: %v", i, err)
			}
		}
		var want []string
		for _, nf := range set {
			checkVisibleFile(t, dir, nf)
			parts := strings.Split(nf.Path, "/")
			for j := 1; j < len(parts); j++ {
				d := strings.Join(parts[:j], "/")
				want = append(want, d+"/")
				mode, uid, gid := statOwner(t, filepath.Join(dir, d))
				if mode != fs.ModeDir|0o755 || uid != 0 || gid != 0 {
					t.Errorf("set %d: directory %s: %v %d:%d, want drwxr-xr-x root", i, d, mode, uid, gid)
				}
			}
			want = append(want, nf.Path)
		}
		slices.Sort(want)
		if got := visibleTree(t, dir); !slices.Equal(got, slices.Compact(want)) {
			t.Errorf("set %d: visible %q, want %q", i, got, want)
		}
		if got, err := Read(dir); err != nil || len(got) != len(set) {
			t.Errorf("set %d: Read %q %v", i, got, err)
		}
	}
	checkReadOnly(t, dir, true)
	if _, err := Wipe(dir); err != nil {
		t.Fatal(err)
	}
}

// A mount laid out by an earlier version, with top-level symlinks into
// ..data, becomes the hard-link layout on its next Update, and the symlinks
// are never followed into a generation.
func TestUpdateFromSymlinkLayout(t *testing.T) {
	dir := filepath.Join(testRoot(t), "m")
	if err := Mount(dir, []File{
		{Path: "a", Data: []byte("a0"), Mode: 0o444},
		{Path: "tls/key", Data: []byte("k0"), Mode: 0o400},
		{Path: "old/x", Data: []byte("x0"), Mode: 0o444},
	}, Options{}); err != nil {
		t.Fatal(err)
	}
	gen0, _ := currentGen(dir)
	if err := remount(dir, mountFlags); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "tls", "old"} {
		p := filepath.Join(dir, name)
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(dataLink+"/"+name, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(dataLink+"/a", filepath.Join(dir, linkTmp)); err != nil {
		t.Fatal(err)
	}
	if err := makeReadOnly(dir); err != nil {
		t.Fatal(err)
	}

	next := []File{
		{Path: "a", Data: []byte("a1"), Mode: 0o444},
		{Path: "tls/key", Data: []byte("k1"), Mode: 0o400},
		{Path: "tls/cert", Data: []byte("c1"), Mode: 0o444},
	}
	if err := Update(dir, next); err != nil {
		t.Fatal(err)
	}
	for _, f := range next {
		checkVisibleFile(t, dir, f)
	}
	if got, want := visibleTree(t, dir), []string{"a", "tls/", "tls/cert", "tls/key"}; !slices.Equal(got, want) {
		t.Errorf("visible %q, want %q", got, want)
	}
	// The old symlinks were removed, not followed: the new generation holds
	// exactly the new set, and the old one is gone.
	if got, err := Read(dir); err != nil || len(got) != len(next) || string(got["a"]) != "a1" {
		t.Errorf("Read after Update: %q %v", got, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, gen0)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("previous generation %s still present: %v", gen0, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, linkTmp)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s left behind: %v", linkTmp, err)
	}
	checkReadOnly(t, dir, true)
	if _, err := Wipe(dir); err != nil {
		t.Fatal(err)
	}
}

// After an interrupted publish a visible name may still share an older
// generation's inode; removing that generation must leave the visible file
// whole. A retired file nobody names any more is zeroed, even for a reader
// that holds it open.
func TestRemoveStaleKeepsVisibleFilesWhole(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	set := func(v int) []File {
		return []File{{Path: "f", Data: fmt.Appendf(nil, "version %d", v), Mode: 0o444}}
	}
	if err := publish(dir, set(0)); err != nil {
		t.Fatal(err)
	}
	gen0, _ := currentGen(dir)
	held, err := os.Open(filepath.Join(dir, gen0, "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := publish(dir, set(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, gen0)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("generation %s still present after the next publish: %v", gen0, err)
	}
	buf := make([]byte, len("version 0"))
	if _, err := held.ReadAt(buf, 0); err != nil || !bytes.Equal(buf, make([]byte, len(buf))) {
		t.Errorf("retired file reads %q (%v) for its reader, want zeros", buf, err)
	}
	// A visible name still on an old generation (as a failed publish would
	// leave it) survives that generation's removal, whole.
	gen1, _ := currentGen(dir)
	if err := os.Remove(filepath.Join(dir, "f")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, gen1, "f"), filepath.Join(dir, "f")); err != nil {
		t.Fatal(err)
	}
	if err := removeStale(dir, ""); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || string(b) != "version 1" {
		t.Errorf("visible file after its generation was removed: %q %v", b, err)
	}
	// Its last name goes at the next publish, and it is zeroed then.
	vis, err := os.Open(filepath.Join(dir, "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer vis.Close()
	if err := publish(dir, set(2)); err != nil {
		t.Fatal(err)
	}
	if _, err := vis.ReadAt(buf, 0); err != nil || !bytes.Equal(buf, make([]byte, len(buf))) {
		t.Errorf("file whose last name a publish replaced reads %q (%v), want zeros", buf, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || string(b) != "version 2" {
		t.Errorf("visible file after publish: %q %v", b, err)
	}
}

func TestUpdateOutOfSpaceKeepsOldSet(t *testing.T) {
	dir := filepath.Join(testRoot(t), "m")
	page := os.Getpagesize()
	old := []File{{Path: "f", Data: bytes.Repeat([]byte("o"), page), Mode: 0o444}}
	if err := Mount(dir, old, Options{}); err != nil {
		t.Fatal(err)
	}
	gen, _ := currentGen(dir)
	// Update grows a mount that lacks room, so run out of inodes instead:
	// the new generation's directory gets the last one.
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("", dir, "", unix.MS_REMOUNT|mountFlags|unix.MS_RDONLY, fmt.Sprintf("nr_inodes=%d", st.Files-st.Ffree+1)); err != nil {
		t.Fatal(err)
	}
	err := Update(dir, []File{{Path: "f", Data: bytes.Repeat([]byte("n"), 3*page), Mode: 0o444}, {Path: "g", Data: []byte("g")}})
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Update beyond the inode cap: %v, want ENOSPC", err)
	}
	if got, err := Read(dir); err != nil || len(got) != 1 || !bytes.Equal(got["f"], old[0].Data) {
		t.Errorf("old set damaged by failed Update: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 { // gen, ..data, f
		t.Errorf("failed Update left entries behind: %v", entries)
	}
	if now, _ := currentGen(dir); now != gen {
		t.Errorf("..data moved to %s", now)
	}
	checkVisibleFile(t, dir, old[0])
	checkReadOnly(t, dir, true)
	if _, err := Wipe(dir); err != nil {
		t.Fatal(err)
	}
}

// A secret that grows from one byte to just under the 500 KiB a secret may
// hold ran out of space on its third Update while the tmpfs kept the size
// Mount gave it.
func TestUpdateGrowsTheMount(t *testing.T) {
	dir := filepath.Join(testRoot(t), "m")
	if err := Mount(dir, []File{{Path: "s", Data: []byte("x"), Mode: 0o444}, {Path: "other", Data: []byte("o"), Mode: 0o444}}, Options{}); err != nil {
		t.Fatal(err)
	}
	for v := 1; v <= 6; v++ {
		big := bytes.Repeat([]byte{byte('a' + v)}, 499<<10)
		set := []File{{Path: "s", Data: big, Mode: 0o444}, {Path: "other", Data: []byte("o"), Mode: 0o444}}
		if err := Update(dir, set); err != nil {
			t.Fatalf("Update %d to %d bytes: %v", v, len(big), err)
		}
		for _, f := range set {
			checkVisibleFile(t, dir, f)
		}
	}
	// The resize kept every mount option.
	checkReadOnly(t, dir, true)
	if m := entryFor(t, dir); !strings.Contains(m.superOptions, "mode=755") {
		t.Errorf("super options after resize: %q", m.superOptions)
	}
	if _, err := Wipe(dir); err != nil {
		t.Fatal(err)
	}
}

// allNames walks every name under dir, reserved ones included, and
// returns the content behind each regular file.
func allNames(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := make(map[string][]byte)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[p] = b
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Once Update returns, no name under the mount (visible, ..data, any
// generation) holds a rotated-out version or a file that left the set, and
// readers that held them open read zeros.
func TestUpdateLeavesNothingOld(t *testing.T) {
	dir := filepath.Join(testRoot(t), "m")
	oldX, newX, canY := []byte("x-canary-OLD-4711"), []byte("x-canary-NEW-0815"), []byte("y-canary-REVOKED-1234")
	if err := Mount(dir, []File{
		{Path: "x", Data: oldX, Mode: 0o444},
		{Path: "sub/y", Data: canY, Mode: 0o400, UID: 7},
		{Path: "keep", Data: []byte("kept"), Mode: 0o444},
	}, Options{}); err != nil {
		t.Fatal(err)
	}
	heldX, err := os.Open(filepath.Join(dir, "x"))
	if err != nil {
		t.Fatal(err)
	}
	defer heldX.Close()
	heldY, err := os.Open(filepath.Join(dir, dataLink, "sub/y"))
	if err != nil {
		t.Fatal(err)
	}
	defer heldY.Close()

	next := []File{{Path: "x", Data: newX, Mode: 0o444}, {Path: "keep", Data: []byte("kept"), Mode: 0o444}}
	if err := Update(dir, next); err != nil {
		t.Fatal(err)
	}
	names := allNames(t, dir)
	for p, b := range names {
		for _, c := range [][]byte{oldX, canY} {
			if bytes.Contains(b, c) {
				t.Errorf("%s still holds %q after Update", p, c)
			}
		}
	}
	if len(names) != 2*len(next) { // each file: its generation's name and its visible one
		t.Errorf("names under the mount after Update: %d, want %d", len(names), 2*len(next))
	}
	for _, f := range next {
		checkVisibleFile(t, dir, f)
	}
	for _, h := range []struct {
		f    *os.File
		size int
	}{{heldX, len(oldX)}, {heldY, len(canY)}} {
		buf := make([]byte, h.size)
		if _, err := h.f.ReadAt(buf, 0); err != nil || !bytes.Equal(buf, make([]byte, h.size)) {
			t.Errorf("%s, held open across Update, reads %q (%v), want zeros", h.f.Name(), buf, err)
		}
	}
	if _, err := Wipe(dir); err != nil {
		t.Fatal(err)
	}
}

// A failed publish can leave a visible name as the only link of an old
// file; the Update that finally replaces it zeroes it too.
func TestUpdateZeroesOrphanedVisibleFile(t *testing.T) {
	dir := filepath.Join(testRoot(t), "m")
	canary := []byte("orphan-canary-9876")
	if err := Mount(dir, []File{{Path: "x", Data: canary, Mode: 0o444}}, Options{}); err != nil {
		t.Fatal(err)
	}
	gen, _ := currentGen(dir)
	if err := remount(dir, mountFlags); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, gen, "x")); err != nil { // x keeps the only link
		t.Fatal(err)
	}
	if err := makeReadOnly(dir); err != nil {
		t.Fatal(err)
	}
	held, err := os.Open(filepath.Join(dir, "x"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := Update(dir, []File{{Path: "x", Data: []byte("fresh"), Mode: 0o444}}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(canary))
	if _, err := held.ReadAt(buf, 0); err != nil || !bytes.Equal(buf, make([]byte, len(buf))) {
		t.Errorf("orphaned visible file reads %q (%v) after Update, want zeros", buf, err)
	}
	if _, err := Wipe(dir); err != nil {
		t.Fatal(err)
	}
}

func versionedSet(v int) []File {
	mk := func(name string) []byte {
		// Several pages, so a reader catching a file half written would notice.
		return bytes.Repeat(fmt.Appendf(nil, "%s version %06d\n", name, v), 400)
	}
	return []File{
		{Path: "one", Data: mk("one"), Mode: 0o444},
		{Path: "two", Data: mk("two"), Mode: 0o444},
		{Path: "sub/three", Data: mk("three"), Mode: 0o444},
	}
}

var versionedNames = []string{"one", "two", "sub/three"}

// checkVersionedSet returns the common version of a complete, intact set.
func checkVersionedSet(root string) (int, error) {
	version := -1
	for _, name := range versionedNames {
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			return 0, err
		}
		v, err := parseVersioned(name, b)
		if err != nil {
			return 0, err
		}
		if version >= 0 && v != version {
			return 0, fmt.Errorf("mixed versions %d and %d", version, v)
		}
		version = v
	}
	return version, nil
}

// parseVersioned returns the version of a complete, intact file of
// versionedSet, or an error describing what is wrong with it.
func parseVersioned(name string, b []byte) (int, error) {
	base := filepath.Base(name)
	var v int
	if _, err := fmt.Sscanf(string(b), base+" version %d\n", &v); err != nil {
		return 0, fmt.Errorf("%s: unparsable content (%d bytes): %w", name, len(b), err)
	}
	if !bytes.Equal(b, bytes.Repeat(fmt.Appendf(nil, "%s version %06d\n", base, v), 400)) {
		return 0, fmt.Errorf("%s: content of version %d is damaged (%d bytes)", name, v, len(b))
	}
	return v, nil
}

// zeroedVersioned reports whether b is one version of the file name of
// versionedSet, with some or all bytes zeroed.
func zeroedVersioned(name string, b []byte) bool {
	one := fmt.Appendf(nil, "%s version %06d\n", filepath.Base(name), 0)
	if len(b) != len(one)*400 {
		return false
	}
	var v []byte // the version's text, learnt from the first line read whole
	for i := 0; i < len(b); i += len(one) {
		line := b[i : i+len(one)]
		if bytes.IndexByte(line, 0) >= 0 {
			continue
		}
		if v == nil {
			v = line
		} else if !bytes.Equal(line, v) {
			return false
		}
	}
	for i := 0; v != nil && i < len(b); i++ {
		if c := b[i]; c != 0 && c != v[i%len(v)] {
			return false
		}
	}
	return true
}

func TestConcurrentReadersSeeWholeSets(t *testing.T) {
	dir := filepath.Join(testRoot(t), "m")
	if err := Mount(dir, versionedSet(0), Options{}); err != nil {
		t.Fatal(err)
	}
	var (
		stop          atomic.Bool
		done          atomic.Int64 // Updates completed
		stable, raced atomic.Int64
		perFile       atomic.Int64
		zeroed        atomic.Int64
		wg            sync.WaitGroup
		dataPath      = filepath.Join(dir, dataLink)
		lastSeen      [4]int // per snapshot reader: versions must never go back
	)
	// Snapshot readers: a consistent set through ..data, with the re-check.
	for r := range lastSeen {
		wg.Go(func() {
			for !stop.Load() {
				g1, err := os.Readlink(dataPath)
				if err != nil {
					t.Errorf("..data unreadable during Update: %v", err)
					return
				}
				vGen, errGen := checkVersionedSet(filepath.Join(dir, g1))
				g2, err := os.Readlink(dataPath)
				if err != nil {
					t.Errorf("..data unreadable during Update: %v", err)
					return
				}
				if g1 != g2 {
					// Update retired g1 meanwhile: ENOENT or zeros are allowed here.
					raced.Add(1)
					continue
				}
				stable.Add(1)
				if errGen != nil {
					t.Errorf("with ..data fixed at %s: %v", g1, errGen)
					return
				}
				if vGen < lastSeen[r] {
					t.Errorf("version went back from %d to %d", lastSeen[r], vGen)
					return
				}
				lastSeen[r] = vGen
			}
		})
	}
	// Per-file readers: every open of a visible name, in a tight loop, must
	// give one complete version of that file, never a missing, empty or
	// partial one, and versions of one name never go back.
	for _, name := range versionedNames {
		for range 2 {
			wg.Go(func() {
				p := filepath.Join(dir, name)
				last := 0
				for !stop.Load() {
					b, err := os.ReadFile(p)
					if err != nil {
						t.Errorf("read %s during Update: %v", name, err)
						return
					}
					perFile.Add(1)
					v, err := parseVersioned(name, b)
					if err != nil {
						// A read that raced the zeroing of the file it
						// opened sees zeros where the retired version was,
						// never another version's bytes.
						if zeroedVersioned(name, b) {
							zeroed.Add(1)
							continue
						}
						t.Errorf("through the visible name: %v", err)
						return
					}
					if v < last {
						t.Errorf("%s: version went back from %d to %d", name, last, v)
						return
					}
					last = v
				}
			})
		}
	}
	const updates = 200
	for v := 1; v <= updates; v++ {
		if err := Update(dir, versionedSet(v)); err != nil {
			t.Errorf("Update %d: %v", v, err)
			break
		}
		done.Add(1)
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d stable snapshots, %d discarded because an Update raced them; %d reads through visible names, %d of them raced the zeroing",
		stable.Load(), raced.Load(), perFile.Load(), zeroed.Load())
	if stable.Load() == 0 {
		t.Error("readers never got a stable snapshot")
	}
	if perFile.Load() == 0 {
		t.Error("readers never read a visible file")
	}
	if v, err := checkVersionedSet(dir); err != nil || v != updates {
		t.Errorf("final set through names: version %d, %v", v, err)
	}
	if got, err := Read(dir); err != nil || len(got) != len(versionedNames) {
		t.Errorf("final Read: %d files, %v", len(got), err)
	}
	// Readers may have held a retired file open during the last remount, in
	// which case only the mount (not the superblock) is read-only.
	checkReadOnly(t, dir, false)
	if _, err := Wipe(dir); err != nil {
		t.Fatal(err)
	}
}

func TestWipeBusyZeroesAndDetaches(t *testing.T) {
	dir := filepath.Join(testRoot(t), "m")
	secret := bytes.Repeat([]byte("secret!"), 2000)
	if err := Mount(dir, []File{{Path: "s/key", Data: secret, Mode: 0o400}}, Options{}); err != nil {
		t.Fatal(err)
	}
	held, err := os.Open(filepath.Join(dir, "s/key"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	res, err := Wipe(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Lazy {
		t.Error("Wipe of a busy mount did not report a lazy detach")
	}
	buf := make([]byte, len(secret)+1)
	n, err := held.ReadAt(buf, 0)
	if n != len(secret) || (err != nil && !errors.Is(err, io.EOF)) {
		t.Fatalf("read through held descriptor: %d bytes, %v", n, err)
	}
	if !bytes.Equal(buf[:n], make([]byte, n)) {
		t.Error("held descriptor still sees secret bytes after Wipe")
	}
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("mount point still exists: %v", err)
	}
	if ok, err := IsMounted(dir); ok || err != nil {
		t.Errorf("IsMounted after Wipe: %v %v", ok, err)
	}
}

func TestWipeIdle(t *testing.T) {
	root := testRoot(t)
	dir := filepath.Join(root, "m")
	if err := Mount(dir, []File{{Path: "k", Data: []byte("v"), Mode: 0o444}}, Options{}); err != nil {
		t.Fatal(err)
	}
	res, err := Wipe(dir)
	if err != nil || res.Lazy {
		t.Fatalf("Wipe: %+v %v", res, err)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("mount point still exists: %v", err)
	}
	if res, err := Wipe(dir); err != nil || res.Lazy {
		t.Errorf("second Wipe: %+v %v", res, err)
	}

	leftover := filepath.Join(root, "leftover")
	if err := os.MkdirAll(filepath.Join(leftover, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Wipe(leftover); err != nil {
		t.Errorf("Wipe of unmounted leftover: %v", err)
	}
	if _, err := os.Lstat(leftover); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("leftover still exists: %v", err)
	}

	// Stacked mounts all go.
	stacked := filepath.Join(root, "stacked")
	if err := Mount(stacked, nil, Options{}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", stacked, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatal(err)
	}
	if _, err := Wipe(stacked); err != nil {
		t.Errorf("Wipe of stacked mounts: %v", err)
	}
	if ok, _ := IsMounted(stacked); ok {
		t.Error("stacked mount survived Wipe")
	}
}

func TestWipeRefusesNonTmpfs(t *testing.T) {
	root := testRoot(t)
	src := filepath.Join(root, "src")
	dst := filepath.Join(root, "dst")
	for _, d := range []string{src, dst} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(src, "keep"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	// /tmp itself may be a tmpfs, in which case the bind shows as tmpfs.
	if m := entryFor(t, dst); m.fsType == "tmpfs" {
		t.Skip("temp dir is on tmpfs")
	}
	if _, err := Wipe(dst); err == nil {
		t.Error("Wipe of a non-tmpfs mount succeeded")
	}
	if b, err := os.ReadFile(filepath.Join(src, "keep")); err != nil || string(b) != "keep" {
		t.Errorf("Wipe touched a non-tmpfs mount: %q %v", b, err)
	}
	if err := unix.Unmount(dst, 0); err != nil {
		t.Fatal(err)
	}
}

func TestBadFileSets(t *testing.T) {
	root := testRoot(t)
	good := File{Path: "ok", Data: []byte("x"), Mode: 0o444}
	cases := []struct {
		name  string
		files []File
		want  string // must appear in the error
	}{
		{"empty", []File{{Path: ""}}, "empty file path"},
		{"absolute", []File{{Path: "/etc/passwd"}}, `"/etc/passwd"`},
		{"dotdot", []File{{Path: "a/../../b"}}, `"a/../../b"`},
		{"leading dotdot", []File{{Path: "../b"}}, `"../b"`},
		{"dot", []File{{Path: "a/./b"}}, `"a/./b"`},
		{"empty component", []File{{Path: "a//b"}}, `"a//b"`},
		{"trailing slash", []File{{Path: "a/"}}, `"a/"`},
		{"reserved data", []File{{Path: "..data"}}, `"..data"`},
		{"reserved prefix", []File{{Path: "..x/y"}}, `"..x/y"`},
		{"duplicate", []File{good, good}, `"ok"`},
		{"file and dir", []File{{Path: "a/b"}, {Path: "a"}}, `"a"`},
		{"file and deep dir", []File{{Path: "a/b"}, {Path: "a/b/c/d"}}, `"a/b"`},
		{"setuid", []File{{Path: "s", Mode: 0o4755}}, `"s"`},
		{"negative uid", []File{{Path: "u", UID: -1}}, `"u"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(root, "m")
			err := Mount(dir, c.files, Options{})
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Mount: %v, want ErrInvalid naming %s", err, c.want)
			}
			if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("refused Mount left %s: %v", dir, err)
			}
			if ms, err := Mounts(root); err != nil || len(ms) != 0 {
				t.Errorf("refused Mount left mounts: %q %v", ms, err)
			}
		})
	}
	if err := Mount(filepath.Join(root, "m"), []File{good}, Options{Size: 1}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Mount with a size below two copies: %v", err)
	}

	dir := filepath.Join(root, "live")
	if err := Mount(dir, []File{good}, Options{}); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		if err := Update(dir, c.files); !errors.Is(err, ErrInvalid) {
			t.Errorf("Update with %s: %v", c.name, err)
		}
	}
	if got, err := Read(dir); err != nil || len(got) != 1 || string(got["ok"]) != "x" {
		t.Errorf("refused Updates changed the set: %q %v", got, err)
	}
	checkReadOnly(t, dir, true)
	if _, err := Wipe(dir); err != nil {
		t.Fatal(err)
	}
}

func TestMountRefusesExistingDir(t *testing.T) {
	dir := filepath.Join(testRoot(t), "m")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := Mount(dir, nil, Options{}); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Mount on existing dir: %v, want ErrExist", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("Mount removed a directory it did not create: %v", err)
	}
	if ok, _ := IsMounted(dir); ok {
		t.Error("Mount mounted on an existing directory")
	}
}

func TestUpdateRefusesForeignDirs(t *testing.T) {
	root := testRoot(t)
	plain := filepath.Join(root, "plain")
	if err := os.Mkdir(plain, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Update(plain, nil); err == nil {
		t.Error("Update of an unmounted directory succeeded")
	}

	// A tmpfs without the layout, like /dev/shm, must be left alone.
	foreign := filepath.Join(root, "foreign")
	if err := os.Mkdir(foreign, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", foreign, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(foreign, "theirs"), []byte("t"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Update(foreign, []File{{Path: "x", Data: []byte("x")}}); err == nil {
		t.Error("Update of a foreign tmpfs succeeded")
	}
	if _, err := os.Stat(filepath.Join(foreign, "theirs")); err != nil {
		t.Errorf("Update touched a foreign tmpfs: %v", err)
	}
	if err := unix.Unmount(foreign, 0); err != nil {
		t.Fatal(err)
	}
}

func TestMountsAndIsMounted(t *testing.T) {
	root := testRoot(t)
	var want []string
	for _, name := range []string{"b", "a", "sp ace", `back\slash`, "tab\there"} {
		dir := filepath.Join(root, name)
		if err := Mount(dir, []File{{Path: "f", Data: []byte(name), Mode: 0o444}}, Options{}); err != nil {
			t.Fatal(err)
		}
		want = append(want, dir)
		if ok, err := IsMounted(dir); !ok || err != nil {
			t.Errorf("IsMounted(%q): %v %v", dir, ok, err)
		}
	}
	slices.Sort(want)
	deep := filepath.Join(root, "deep", "x")
	if err := Mount(deep, nil, Options{}); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "plain"), 0o755); err != nil {
		t.Fatal(err)
	}

	got, err := Mounts(root)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("Mounts(%s) = %q, want %q", root, got, want)
	}
	for _, p := range []string{filepath.Join(root, "plain"), filepath.Join(root, "nonexistent"), filepath.Join(root, "deep")} {
		if ok, err := IsMounted(p); ok || err != nil {
			t.Errorf("IsMounted(%q): %v %v", p, ok, err)
		}
	}
	if ok, _ := IsMounted(deep); !ok {
		t.Errorf("IsMounted(%q) false", deep)
	}

	for _, dir := range append(want, deep) {
		if _, err := Wipe(dir); err != nil {
			t.Error(err)
		}
	}
	if got, err := Mounts(root); err != nil || len(got) != 0 {
		t.Errorf("Mounts after Wipe: %q %v", got, err)
	}
}

func TestParseMountinfo(t *testing.T) {
	const info = "36 35 98:0 /mnt1 /mnt/with\\040space\\134x rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n" +
		"37 35 0:40 / /run/s ro,nosuid,nodev,noexec,relatime - tmpfs tmp\\011fs ro,size=1024k,mode=755,noswap\n"
	got, err := parseMountinfo(info)
	if err != nil {
		t.Fatal(err)
	}
	want := []mountEntry{
		{mountPoint: `/mnt/with space\x`, fsType: "ext3", source: "/dev/root", options: "rw,noatime", superOptions: "rw,errors=continue"},
		{mountPoint: "/run/s", fsType: "tmpfs", source: "tmp\tfs", options: "ro,nosuid,nodev,noexec,relatime", superOptions: "ro,size=1024k,mode=755,noswap"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("parseMountinfo:\n got %+v\nwant %+v", got, want)
	}
	for _, bad := range []string{"1 2 3 4 /x rw shared:1\n", "1 2 0:1 / /a\\04 rw - tmpfs t rw\n", "1 2 0:1 / /a\\999 rw - tmpfs t rw\n"} {
		if _, err := parseMountinfo(bad); err == nil {
			t.Errorf("parseMountinfo(%q) accepted", bad)
		}
	}
}

func TestValidatePathAccepts(t *testing.T) {
	for _, p := range []string{"a", "a.b", ".hidden", "a..b", "a/.b/..c", "tls/key.pem", strconv.Itoa(42)} {
		if err := validateFiles([]File{{Path: p}}); err != nil {
			t.Errorf("%q refused: %v", p, err)
		}
	}
}

func TestUpdateWhileOldFileHeldOpen(t *testing.T) {
	dir := filepath.Join(testRoot(t), "m")
	old := []byte("old secret")
	if err := Mount(dir, []File{{Path: "k", Data: old, Mode: 0o444}}, Options{}); err != nil {
		t.Fatal(err)
	}
	held, err := os.Open(filepath.Join(dir, "k"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	// Once Update returns, the rotated-out version is zeros even for a
	// reader that holds it open; the open, unlinked file keeps the
	// superblock from going read-only.
	if err := Update(dir, []File{{Path: "k", Data: []byte("new"), Mode: 0o444}}); err != nil {
		t.Fatal(err)
	}
	checkReadOnly(t, dir, false)
	buf := make([]byte, len(old))
	if _, err := held.ReadAt(buf, 0); err != nil || !bytes.Equal(buf, make([]byte, len(old))) {
		t.Errorf("retired file reads %q (%v) for its reader, want zeros", buf, err)
	}
	if err := held.Close(); err != nil {
		t.Fatal(err)
	}
	if err := Update(dir, []File{{Path: "k", Data: []byte("newer"), Mode: 0o444}}); err != nil {
		t.Fatal(err)
	}
	checkReadOnly(t, dir, true)
	if _, err := Wipe(dir); err != nil {
		t.Fatal(err)
	}
}

// resetNoswap forgets the kept probe answer for the test's duration.
func resetNoswap(t *testing.T) {
	t.Helper()
	noswap.Lock()
	noswap.probed = false
	noswap.Unlock()
	t.Cleanup(func() {
		noswap.Lock()
		noswap.probed = false
		noswap.Unlock()
	})
}

// kernelNoswap asks the kernel directly, as a user would.
func kernelNoswap(t *testing.T, base string) bool {
	t.Helper()
	d := filepath.Join(base, "kernel-probe")
	if err := os.Mkdir(d, 0o700); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(d)
	if err := unix.Mount("tmpfs", d, "tmpfs", 0, "size=4k,noswap"); err != nil {
		return false
	}
	if err := unix.Unmount(d, 0); err != nil {
		t.Fatal(err)
	}
	return true
}

// In a FROM scratch image or a plugin rootfs there is no /tmp: Mount must
// still find noswap, by probing under the mount root.
func TestMountProbesNoswapWithoutTmp(t *testing.T) {
	base := testRoot(t)
	want := kernelNoswap(t, base)
	resetNoswap(t)
	t.Setenv("TMPDIR", filepath.Join(base, "no-such-tmp"))
	dir := filepath.Join(base, "root", "m")
	if err := Mount(dir, []File{{Path: "f", Data: []byte("x"), Mode: 0o444}}, Options{}); err != nil {
		t.Fatal(err)
	}
	m := entryFor(t, dir)
	if got := optSet(m.superOptions)["noswap"]; got != want {
		t.Errorf("super options %q: noswap %v, want %v (the kernel's answer)", m.superOptions, got, want)
	}
	for _, o := range []string{"ro", "nosuid", "nodev", "noexec"} {
		if !optSet(m.options)[o] {
			t.Errorf("mount options %q lack %s", m.options, o)
		}
	}
	entries, err := os.ReadDir(filepath.Dir(dir))
	if err != nil || len(entries) != 1 {
		t.Errorf("mount root holds %v (%v), want only the mount: the probe left something", entries, err)
	}
	if got, err := ProbeNoswap(filepath.Join(base, "elsewhere")); err != nil || got != want {
		t.Errorf("ProbeNoswap after Mount: %v %v, want the kept %v", got, err, want)
	}
	if _, err := Wipe(dir); err != nil {
		t.Fatal(err)
	}
}

func TestProbeNoswapReportsWhatItCannotProbe(t *testing.T) {
	base := testRoot(t)
	resetNoswap(t)
	if ok, err := ProbeNoswap(filepath.Join(base, "missing")); err == nil || ok {
		t.Errorf("probe under a missing root: %v %v, want an error", ok, err)
	}
	want := kernelNoswap(t, base)
	if ok, err := ProbeNoswap(base); err != nil || ok != want {
		t.Errorf("probe under %s: %v %v, want %v", base, ok, err, want)
	}
	if entries, _ := os.ReadDir(base); len(entries) != 0 {
		t.Errorf("probe left %v behind", entries)
	}
}

func TestSwapsListed(t *testing.T) {
	header := "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
	if swapsListed([]byte(header)) {
		t.Error("a header alone reads as swap on")
	}
	if !swapsListed([]byte(header + "/swapfile                               file\t\t4194300\t\t0\t\t-2\n")) {
		t.Error("a listed swap file reads as swap off")
	}
}

// TestWipeRefusesMountsItWouldDescendInto: after its own unmounts, Wipe
// removes the directory, and RemoveAll would delete the files of whatever
// is still mounted at or below it. Each case runs with statx's mount-root
// attribute and with the mountinfo scan older kernels get.
func TestWipeRefusesMountsItWouldDescendInto(t *testing.T) {
	cases := []struct {
		name  string
		mount func(t *testing.T, root, dir string) (keep string)
		want  string
	}{
		{"bind from the same filesystem on it", func(t *testing.T, root, dir string) string {
			src := filepath.Join(root, "src")
			mustMkdir(t, src)
			mustMount(t, src, dir, "", unix.MS_BIND)
			return writeKeep(t, src)
		}, "mount is on it"},
		{"tmpfs inside it", func(t *testing.T, root, dir string) string {
			sub := filepath.Join(dir, "a", "sub")
			if err := os.MkdirAll(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			mustMount(t, "tmpfs", sub, "tmpfs", 0)
			return writeKeep(t, sub)
		}, "a/sub is mounted inside it"},
		{"file bind-mounted inside it", func(t *testing.T, root, dir string) string {
			keep := writeKeep(t, root)
			target := filepath.Join(dir, "f")
			if err := os.WriteFile(target, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			mustMount(t, keep, target, "", unix.MS_BIND)
			return keep
		}, "f is mounted inside it"},
	}
	for _, statx := range []bool{true, false} {
		for _, c := range cases {
			t.Run(fmt.Sprintf("%s/statx=%v", c.name, statx), func(t *testing.T) {
				defer func(old bool) { statxMountRoot = old }(statxMountRoot)
				statxMountRoot = statx
				root := testRoot(t)
				if _, known, _ := mountRoot(root); statx && !known {
					t.Log("this kernel has no STATX_ATTR_MOUNT_ROOT: Wipe scans mountinfo here too")
				}
				dir := filepath.Join(root, "dir")
				mustMkdir(t, dir)
				keep := c.mount(t, root, dir)
				_, err := Wipe(dir)
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("Wipe = %v, want an error saying %q", err, c.want)
				}
				if b, err := os.ReadFile(keep); err != nil || string(b) != "keep" {
					t.Errorf("Wipe touched the other mount's file: %q %v", b, err)
				}
			})
		}
	}
}

func mustMkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustMount(t *testing.T, src, target, fstype string, flags uintptr) {
	t.Helper()
	if err := unix.Mount(src, target, fstype, flags, ""); err != nil {
		t.Fatal(err)
	}
	// Before testRoot's cleanup, which reports mounts left behind.
	t.Cleanup(func() {
		if err := unix.Unmount(target, 0); err != nil {
			t.Errorf("unmount %s: %v", target, err)
		}
	})
}

func writeKeep(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "keep")
	if err := os.WriteFile(p, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
