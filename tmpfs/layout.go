package tmpfs

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// genRE matches generation names made from genLayout; ..data pointing
// anywhere else means dir was not laid out by this package.
var genRE = regexp.MustCompile(`^\.\.[0-9]{4}_[0-9]{2}_[0-9]{2}_[0-9]{2}_[0-9]{2}_[0-9]{2}\.[0-9]{9}$`)

func currentGen(dir string) (string, error) {
	link := filepath.Join(dir, dataLink)
	gen, err := os.Readlink(link)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", link, err)
	}
	if !genRE.MatchString(gen) {
		return "", fmt.Errorf("%s points to %q, not a generation directory", link, gen)
	}
	return gen, nil
}

// publish makes files the visible set in the writable mount at dir: new
// generation, atomic swap of ..data, visible hard links switched one by one,
// then removal, zeroing what is retired, of every other generation
// (including leftovers of an interrupted earlier call).
func publish(dir string, files []File) error {
	gen, err := writeGeneration(dir, files)
	if err != nil {
		return err
	}
	if err := swapData(dir, gen); err != nil {
		return errors.Join(err, discard(filepath.Join(dir, gen)))
	}
	return errors.Join(syncVisible(dir, gen, files), removeStale(dir, gen))
}

// publishFresh is publish for a mount that holds nothing yet, a new tmpfs
// or an empty spare, which nobody reads until the caller returns: it lays
// out the same tree with no swap, no temporary names and no pruning, as
// there is no old set to keep visible or retire: fewer system calls on a
// Mount's path, each a chance to wait for a core while containers start.
// The caller wipes the mount on failure.
func publishFresh(dir string, files []File) error {
	gen, err := writeGeneration(dir, files)
	if err != nil {
		return err
	}
	if err := symlinkRoot(gen, filepath.Join(dir, dataLink)); err != nil {
		return err
	}
	for _, f := range files {
		if err := mkdirParents(dir, f.Path); err != nil {
			return err
		}
		rel := filepath.FromSlash(f.Path)
		if err := os.Link(filepath.Join(dir, gen, rel), filepath.Join(dir, rel)); err != nil {
			return fmt.Errorf("link %s: %w", filepath.Join(dir, rel), err)
		}
	}
	return nil
}

func writeGeneration(dir string, files []File) (string, error) {
	gen, err := makeGenDir(dir)
	if err != nil {
		return "", err
	}
	root := filepath.Join(dir, gen)
	for _, f := range files {
		if err := writeFile(root, f); err != nil {
			return "", errors.Join(err, discard(root))
		}
	}
	return gen, nil
}

func makeGenDir(dir string) (string, error) {
	// A collision needs two generations in one nanosecond or a clock that
	// stepped back onto an existing name; a fresh reading resolves both.
	for range 100 {
		gen := time.Now().UTC().Format(genLayout)
		err := mkdirRoot(filepath.Join(dir, gen))
		if err == nil {
			return gen, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", err
		}
	}
	return "", fmt.Errorf("create generation directory in %s: names keep colliding", dir)
}

// mkdirRoot creates a directory that any uid may traverse but only root may
// change, independent of the umask.
func mkdirRoot(p string) error {
	if err := os.Mkdir(p, 0o755); err != nil {
		return fmt.Errorf("create directory %s: %w", p, err)
	}
	var err error
	if err = os.Chmod(p, 0o755); err == nil {
		err = os.Lchown(p, 0, 0)
	}
	if err != nil {
		return errors.Join(fmt.Errorf("set owner and mode of %s: %w", p, err), os.Remove(p))
	}
	return nil
}

// mkdirParents creates the directories below root that lead to rel.
func mkdirParents(root, rel string) error {
	parts := strings.Split(rel, "/")
	cur := root
	for _, part := range parts[:len(parts)-1] {
		cur = filepath.Join(cur, part)
		if err := mkdirRoot(cur); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	return nil
}

func writeFile(root string, f File) error {
	if err := mkdirParents(root, f.Path); err != nil {
		return err
	}
	p := filepath.Join(root, filepath.FromSlash(f.Path))
	// 0600 until the data is complete, so nobody else can open it half
	// written. Raw system calls: an *os.File would register the descriptor
	// with the poller first, five more calls per file on a Mount's path.
	fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", p, err)
	}
	if err = writeAll(fd, f.Data); err != nil {
		err = fmt.Errorf("write %s: %w", p, err)
	} else if err = unix.Fchown(fd, f.UID, f.GID); errors.Is(err, syscall.EINVAL) {
		// The kernel's answer for an ID its user namespace does not map.
		err = fmt.Errorf("chown %s to %d:%d: this user namespace does not map that uid or gid (a rootless engine maps only the IDs of its user's subordinate range, 0-65535 by default): %w", p, f.UID, f.GID, err)
	} else if err != nil {
		err = fmt.Errorf("chown %s to %d:%d: %w", p, f.UID, f.GID, err)
	} else if err = unix.Fchmod(fd, uint32(f.Mode.Perm())); err != nil { // after chown, which may clear mode bits
		err = fmt.Errorf("chmod %s to %v: %w", p, f.Mode, err)
	}
	if cerr := unix.Close(fd); cerr != nil && err == nil {
		err = fmt.Errorf("close %s: %w", p, cerr)
	}
	return err
}

// writeAll writes b whole to fd, retrying a short or interrupted write.
func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func symlinkRoot(target, p string) error {
	if err := os.Symlink(target, p); err != nil {
		return fmt.Errorf("create symlink %s: %w", p, err)
	}
	if err := os.Lchown(p, 0, 0); err != nil {
		return errors.Join(fmt.Errorf("chown symlink %s: %w", p, err), os.Remove(p))
	}
	return nil
}

// replaceSymlink builds the link under a reserved temporary name and renames
// it into place, so p never disappears and never points anywhere half made.
func replaceSymlink(target, p, tmp string) error {
	if err := removeTree(tmp); err != nil {
		return fmt.Errorf("remove stale %s: %w", tmp, err)
	}
	if err := symlinkRoot(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		return errors.Join(fmt.Errorf("rename %s to %s: %w", tmp, p, err), os.Remove(tmp))
	}
	return nil
}

func swapData(dir, gen string) error {
	return replaceSymlink(gen, filepath.Join(dir, dataLink), filepath.Join(dir, dataTmpLink))
}

// syncVisible makes dir/<Path> a hard link to dir/gen/<Path> for every file,
// then removes visible entries that are not in the set. Every link is made
// under the reserved name dir/..link_tmp and renamed over the visible path
// (rename works across directories of one filesystem), so a name present in
// the old and the new set switches atomically from the old inode to the new
// one and never goes missing. A path that changes kind between sets (a file
// becoming a directory or the reverse, or a symlink left by an older layout
// becoming a directory) has its old entry removed first: that one case is not
// atomic.
func syncVisible(dir, gen string, files []File) error {
	wantFiles := make(map[string]bool, len(files))
	wantDirs := make(map[string]bool)
	for _, f := range files {
		wantFiles[f.Path] = true
		for i := range len(f.Path) {
			if f.Path[i] == '/' {
				wantDirs[f.Path[:i]] = true
			}
		}
	}
	tmp := filepath.Join(dir, linkTmp)
	var errs []error
	for _, p := range slices.Sorted(maps.Keys(wantFiles)) {
		errs = append(errs, linkVisible(dir, gen, p, tmp))
	}
	errs = append(errs, pruneVisible(dir, dir, "", wantFiles, wantDirs))
	return errors.Join(errs...)
}

// linkVisible points the visible path rel at the file of the same path in gen.
func linkVisible(dir, gen, rel, tmp string) error {
	parts := strings.Split(rel, "/")
	cur := dir
	for _, part := range parts[:len(parts)-1] {
		cur = filepath.Join(cur, part)
		if err := visibleDir(cur); err != nil {
			return err
		}
	}
	src := filepath.Join(dir, gen, filepath.FromSlash(rel))
	p := filepath.Join(dir, filepath.FromSlash(rel))
	srcInfo, err := os.Lstat(src)
	if err != nil {
		return fmt.Errorf("stat %s: %w", src, err)
	}
	switch fi, err := os.Lstat(p); {
	case err == nil && fi.IsDir():
		// The path was a directory in the old set; rename cannot replace a
		// non-empty one. Its entries are links into the generations, so
		// removing them normally frees nothing.
		if err := removeTree(p); err != nil {
			return fmt.Errorf("remove directory %s to replace it by a file: %w", p, err)
		}
	case err == nil && os.SameFile(fi, srcInfo):
		// Already in place; renaming a link over itself would be a no-op that
		// leaves tmp behind.
		return nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("stat %s: %w", p, err)
	}
	if err := removeTree(tmp); err != nil {
		return fmt.Errorf("remove stale %s: %w", tmp, err)
	}
	if err := os.Link(src, tmp); err != nil {
		return fmt.Errorf("link %s: %w", src, err)
	}
	rename := func() error {
		if err := os.Rename(tmp, p); err != nil {
			return errors.Join(fmt.Errorf("rename %s to %s: %w", tmp, p, err), os.Remove(tmp))
		}
		return nil
	}
	if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() {
		// The replaced file may have no other name left (a failed publish
		// can leave a visible name as an old inode's only link).
		return unlinkZeroed(p, rename)
	}
	return rename()
}

// visibleDir makes p a real directory owned by root, replacing whatever
// non-directory is there (a file of the old set, or a symlink of the older
// symlink layout, which must never be followed into a generation).
func visibleDir(p string) error {
	fi, err := os.Lstat(p)
	switch {
	case err == nil && fi.IsDir():
		return nil
	case err == nil:
		if err := removeTree(p); err != nil {
			return fmt.Errorf("remove %s to replace it by a directory: %w", p, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("stat %s: %w", p, err)
	}
	return mkdirRoot(p)
}

// pruneVisible removes, below the visible directory abs (rel relative to the
// mount root dir), every entry that is neither a file of the set nor a
// directory leading to one. At the top the reserved ".." names are skipped.
func pruneVisible(dir, abs, rel string, wantFiles, wantDirs map[string]bool) error {
	entries, err := os.ReadDir(abs)
	if err != nil {
		return fmt.Errorf("list %s: %w", abs, err)
	}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if abs == dir && strings.HasPrefix(name, "..") {
			continue
		}
		r := path.Join(rel, name)
		p := filepath.Join(abs, name)
		switch {
		case wantFiles[r]:
		case wantDirs[r]:
			// Not a directory only if linkVisible failed to make it one,
			// which it reported; removing it would lose what is still there.
			if e.IsDir() {
				errs = append(errs, pruneVisible(dir, p, r, wantFiles, wantDirs))
			}
		default:
			if err := removeTree(p); err != nil {
				errs = append(errs, fmt.Errorf("remove dropped entry %s: %w", p, err))
			}
		}
	}
	return errors.Join(errs...)
}

// removeStale removes every reserved entry but ..data and gen: the
// generation it replaced, older ones, and leftovers of an interrupted call.
// Once it returns, no path under dir holds a file that left the set or an
// older version of one, and each file that lost its last name was zeroed
// first (unlinkZeroed). The exception is a visible name that a failed
// publish left on an old inode: that inode stays whole until a later
// publish replaces the name.
func removeStale(dir, gen string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, "..") || name == dataLink || name == gen {
			continue
		}
		errs = append(errs, removeTree(filepath.Join(dir, name)))
	}
	return errors.Join(errs...)
}

// discard removes a generation that never became current.
func discard(p string) error {
	return removeTree(p)
}

// removeTree removes p and everything below it, zeroing each regular file
// that loses its last name. tmpfs hands freed pages back to the kernel with
// their contents intact, so a secret must be overwritten while something
// still holds its pages. Hard links decide what is retired: a file whose
// inode another name (a visible name, the current generation) still uses is
// only unlinked. It never leaves p's filesystem.
func removeTree(p string) error {
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	return removeEntry(p, fi, devOf(fi))
}

func removeEntry(p string, fi fs.FileInfo, dev uint64) error {
	if devOf(fi) != dev {
		return fmt.Errorf("remove %s: another filesystem is mounted there", p)
	}
	switch {
	case fi.Mode().IsRegular():
		return unlinkZeroed(p, func() error { return os.Remove(p) })
	case !fi.IsDir():
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", p, err)
		}
		return nil
	}
	entries, err := os.ReadDir(p)
	if err != nil {
		return fmt.Errorf("list %s: %w", p, err)
	}
	var errs []error
	for _, e := range entries {
		c := filepath.Join(p, e.Name())
		ci, err := os.Lstat(c)
		if err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", c, err))
			continue
		}
		errs = append(errs, removeEntry(c, ci, dev))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	return nil
}

// unlinkZeroed runs drop, which removes or replaces the name p, and zeroes
// the file p named if that was its last name. The file is opened first, so
// its pages stay allocated until the zeros are written: they never go back
// to the kernel holding the secret, and a reader that still has the file
// open reads zeros. A file another name still uses is left alone.
func unlinkZeroed(p string, drop func() error) error {
	fd, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("open %s to zero it: %w", p, err)
	}
	defer fd.Close()
	if err := drop(); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(fd.Fd()), &st); err != nil {
		return fmt.Errorf("stat %s after unlinking it: %w", p, err)
	}
	if st.Nlink > 0 {
		return nil
	}
	awaitReaders(fd)
	if err := writeZeros(fd); err != nil {
		return fmt.Errorf("zero retired %s: %w", p, err)
	}
	return nil
}

// readersGrace bounds how long awaitReaders waits for one file, and
// readersPoll is how often it looks.
const (
	readersGrace = 5 * time.Millisecond
	readersPoll  = 200 * time.Microsecond
)

// awaitReaders gives a reader that opened a retired file just before its
// name switched a moment to finish, so it reads that version whole instead
// of the zeros about to overwrite it. The file is zeroed after the wait
// whatever happened: a process that keeps it open reads zeros, and no rule
// of timing decides what anyone can still read once Update returns.
//
// A write lease is granted only while no other descriptor has the file
// open, which is the one cheap way the kernel tells. Taking one needs the
// file's owner or CAP_LEASE, which a daemon with its capabilities cut to
// the minimum lacks; the retired file is handed to the daemon's own uid
// first, which CAP_CHOWN (needed to write secrets) allows. Where the kernel
// refuses either, there is no wait.
func awaitReaders(fd *os.File) {
	raw := int(fd.Fd())
	if unix.Fchown(raw, os.Geteuid(), os.Getegid()) != nil {
		return
	}
	deadline := time.Now().Add(readersGrace)
	for {
		_, err := unix.FcntlInt(uintptr(raw), unix.F_SETLEASE, unix.F_WRLCK)
		if err == nil {
			unix.FcntlInt(uintptr(raw), unix.F_SETLEASE, unix.F_UNLCK)
			return
		}
		if !errors.Is(err, unix.EAGAIN) || time.Now().After(deadline) {
			return
		}
		time.Sleep(readersPoll)
	}
}

// zeroTree overwrites every regular file under root with zeros, staying on
// root's filesystem so nothing mounted inside is touched.
func zeroTree(root string) error {
	rootInfo, err := os.Lstat(root)
	if err != nil {
		return fmt.Errorf("zero %s: %w", root, err)
	}
	dev := devOf(rootInfo)
	var errs []error
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			errs = append(errs, fmt.Errorf("zero %s: %w", p, err))
			return nil
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			errs = append(errs, fmt.Errorf("zero %s: %w", p, err))
			return nil
		}
		if devOf(info) != dev {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.IsDir() {
			errs = append(errs, zeroFile(p))
		}
		return nil
	})
	return errors.Join(append(errs, err)...)
}

func devOf(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Dev
	}
	return 0
}

func zeroFile(p string) error {
	fd, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("open %s to zero it: %w", p, err)
	}
	err = writeZeros(fd)
	if cerr := fd.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("zero %s: %w", p, err)
	}
	return nil
}

func writeZeros(fd *os.File) error {
	fi, err := fd.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	zeros := make([]byte, min(size, 64<<10))
	for off := int64(0); off < size; {
		n, err := fd.WriteAt(zeros[:min(int64(len(zeros)), size-off)], off)
		if err != nil {
			return err
		}
		off += int64(n)
	}
	return nil
}
