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
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(real)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != f.Mode {
			t.Errorf("%s resolves to %s: %v %v, want regular %v", f.Path, real, fi.Mode(), err, f.Mode)
		}
	}

	gen, err := os.Readlink(filepath.Join(dir, dataLink))
	if err != nil || !genRE.MatchString(gen) {
		t.Fatalf("..data -> %q (%v), want a generation name", gen, err)
	}
	for _, name := range []string{"a.txt", "tls", "deep"} {
		target, err := os.Readlink(filepath.Join(dir, name))
		if err != nil || target != "..data/"+name {
			t.Errorf("%s -> %q (%v), want ..data/%s", name, target, err, name)
		}
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || st.Gid != 0 {
			t.Errorf("symlink %s owned by %d:%d, want root", name, st.Uid, st.Gid)
		}
	}
	for _, d := range []string{".", gen, gen + "/tls", gen + "/deep/x/y"} {
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
	// The replaced generation stays, intact, for readers that resolved it
	// just before the swap; the next Update retires it.
	if wantNames := []string{oldGen, newGen, dataLink, "a", "d"}; !slices.Equal(names, wantNames) {
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
	if err := Update(dir, next); err != nil {
		t.Fatal(err)
	}
	checkReadOnly(t, dir, true)
	if _, err := Wipe(dir); err != nil {
		t.Fatal(err)
	}
}

func TestUpdateOutOfSpaceKeepsOldSet(t *testing.T) {
	dir := filepath.Join(testRoot(t), "m")
	page := os.Getpagesize()
	old := []File{{Path: "f", Data: bytes.Repeat([]byte("o"), page), Mode: 0o444}}
	if err := Mount(dir, old, Options{Size: int64(3 * page)}); err != nil {
		t.Fatal(err)
	}
	gen, _ := currentGen(dir)
	err := Update(dir, []File{{Path: "f", Data: bytes.Repeat([]byte("n"), 3*page), Mode: 0o444}, {Path: "g", Data: []byte("g")}})
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Update beyond the size cap: %v, want ENOSPC", err)
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
	checkReadOnly(t, dir, true)
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
		base := filepath.Base(name)
		var v int
		if _, err := fmt.Sscanf(string(b), base+" version %d\n", &v); err != nil {
			return 0, fmt.Errorf("%s: unparsable content (%d bytes): %w", name, len(b), err)
		}
		if !bytes.Equal(b, bytes.Repeat(fmt.Appendf(nil, "%s version %06d\n", base, v), 400)) {
			return 0, fmt.Errorf("%s: content of version %d is damaged", name, v)
		}
		if version >= 0 && v != version {
			return 0, fmt.Errorf("mixed versions %d and %d", version, v)
		}
		version = v
	}
	return version, nil
}

func TestConcurrentReadersSeeWholeSets(t *testing.T) {
	dir := filepath.Join(testRoot(t), "m")
	if err := Mount(dir, versionedSet(0), Options{}); err != nil {
		t.Fatal(err)
	}
	var (
		stop          atomic.Bool
		stable, raced atomic.Int64
		wg            sync.WaitGroup
		dataPath      = filepath.Join(dir, dataLink)
		lastSeen      [4]int // per reader: versions must never go back
	)
	for r := range lastSeen {
		wg.Go(func() {
			for !stop.Load() {
				g1, err := os.Readlink(dataPath)
				if err != nil {
					t.Errorf("..data unreadable during Update: %v", err)
					return
				}
				vNames, errNames := checkVersionedSet(dir)
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
				if errNames != nil || errGen != nil {
					t.Errorf("with ..data fixed at %s: through names: %v; through generation: %v", g1, errNames, errGen)
					return
				}
				if vNames != vGen {
					t.Errorf("with ..data fixed at %s: names show version %d, generation %d", g1, vNames, vGen)
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
	const updates = 200
	for v := 1; v <= updates; v++ {
		if err := Update(dir, versionedSet(v)); err != nil {
			t.Errorf("Update %d: %v", v, err)
			break
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d stable snapshots, %d discarded because an Update raced them", stable.Load(), raced.Load())
	if stable.Load() == 0 {
		t.Error("readers never got a stable snapshot")
	}
	if v, err := checkVersionedSet(dir); err != nil || v != updates {
		t.Errorf("final set: version %d, %v", v, err)
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

	// One Update later the replaced generation is kept intact for readers
	// that opened it just before the swap.
	if err := Update(dir, []File{{Path: "k", Data: []byte("new"), Mode: 0o444}}); err != nil {
		t.Fatal(err)
	}
	checkReadOnly(t, dir, true)
	buf := make([]byte, len(old))
	if _, err := held.ReadAt(buf, 0); err != nil || !bytes.Equal(buf, old) {
		t.Errorf("previous generation damaged one Update later: %q %v", buf, err)
	}
	// Two Updates later it is zeroed and unlinked; the open, unlinked file
	// keeps the superblock from going read-only.
	if err := Update(dir, []File{{Path: "k", Data: []byte("new2"), Mode: 0o444}}); err != nil {
		t.Fatal(err)
	}
	checkReadOnly(t, dir, false)
	if _, err := held.ReadAt(buf, 0); err != nil || !bytes.Equal(buf, make([]byte, len(old))) {
		t.Errorf("retired file still readable through held descriptor: %q %v", buf, err)
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
