// Package tmpfs places sets of files in private, size-capped, read-only tmpfs
// mounts and replaces a whole set atomically.
//
// A mount made by Mount looks like this:
//
//	..2026_11_22_16_05_38.123456789/  the current generation: the real files
//	..data -> ..2026_11_22_16_05_38.123456789
//	NAME                              one per file of the set, at its Path
//	DIR/NAME                          (DIR a real directory, 0755 root:root)
//
// Every visible NAME is a hard link to the file of the same path in the
// current generation: a regular file with the File's owner and mode (ls -l
// shows a link count of 2), costing no extra memory.
//
// Update writes a complete new generation beside the old one, renames a fresh
// ..data_tmp symlink over ..data, then, file by file, links the new file
// under the reserved name ..link_tmp and renames that over the visible name;
// names no longer in the set, and directories left without any, are removed
// afterwards. A path that changes kind between sets (a file becoming a
// directory or the reverse) has its old entry removed first, so only there a
// reader may briefly find nothing. Names starting with ".." at the top of the
// mount are reserved for this layout.
//
// There are two ways to read:
//
//   - Per file, through the visible names. Rename is atomic, so opening a
//     visible name yields the complete old or the complete new file, never a
//     missing, empty or partial one. Different names switch one after the
//     other, though, so two files read this way may come from different sets.
//   - As a whole set, through ..data. A reader that wants a consistent
//     multi-file snapshot resolves ..data once (os.Readlink), reads
//     everything under that generation directory, then reads ..data again
//     and retries if it changed. The re-check is part of the contract, not a
//     nicety. Read does exactly this.
//
// Update leaves nothing old behind: once it returns, no path under the
// mount (visible names, ..data, any generation directory) holds a file that
// left the set or an older version of one, and every retired file was
// overwritten with zeros before its memory was freed. A process that still
// holds a retired file open reads zeros: a revoked or rotated-out secret
// stays readable to nobody. A read already under way gets a few
// milliseconds to finish first, so a per-file reader that opened the old
// version just before the switch almost always reads it whole; one slower
// than that sees zeros where the old version was, never another version's
// bytes. A ..data reader whose generation was retired under it
// sees ENOENT or zeros, and the changed ..data tells it to read again. Wipe,
// at container stop, zeroes every file before unmounting.
package tmpfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// File is one file to place in a mount.
type File struct {
	Path     string // relative, slash-separated; may name subdirectories ("tls/key.pem")
	Data     []byte
	UID, GID int
	Mode     os.FileMode // permission bits only
}

// Options tunes Mount.
type Options struct {
	// Size caps the tmpfs in bytes. Zero picks 1 MiB plus room for three copies
	// of the files; an explicit size must fit three copies too. Update writes
	// the new set before it removes the old one, and grows the tmpfs first
	// when the two would not fit.
	Size int64
}

// WipeResult reports how Wipe got rid of a mount.
type WipeResult struct {
	// Lazy is set when the mount was busy and was detached instead: the
	// files are zeroed, but holders of open descriptors keep the (zeroed)
	// filesystem alive until they close them.
	Lazy bool
}

const (
	dataLink    = "..data"
	dataTmpLink = "..data_tmp"
	linkTmp     = "..link_tmp"
	genLayout   = "..2006_01_02_15_04_05.000000000"

	mountFlags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC

	minSize   = 64 << 10
	sizeSlack = 1 << 20

	// maxStacked bounds Wipe's loop over mounts stacked on one directory,
	// so a mount that keeps reappearing cannot spin it forever.
	maxStacked = 16
)

// Mount creates dir, mounts a fresh tmpfs on it, writes files and makes the
// mount read-only. On failure it undoes everything it did, so dir does not
// exist afterwards unless it existed before, in which case Mount refuses it.
func Mount(dir string, files []File, opts Options) (err error) {
	size, err := sizeFor(files, opts)
	if err != nil {
		return err
	}
	dir, unlock, err := newMount(dir, size, 0)
	if err != nil {
		return err
	}
	defer unlock()
	defer func() {
		if err != nil {
			err = errors.Join(err, undoMount(dir, true))
		}
	}()
	if err := publishFresh(dir, files); err != nil {
		return err
	}
	return makeReadOnly(dir)
}

// Prepare creates dir and mounts an empty tmpfs on it: a spare that Fill
// later turns into a mount like Mount's. mount(2) takes a lock that is
// global to the kernel and that every container start on the host takes
// many times, so under a burst of starts it is the slowest step of a
// Mount; Prepare lets a caller pay for it ahead of time. Fill only
// remounts, which takes no such lock. The spare is read-only from the
// start: where the mount root propagates to another mount namespace (a
// managed plugin, secretd in a container) the copy made there keeps
// the read-only flag it was made with, which a later remount would not
// reach. On failure dir does not exist afterwards unless it existed
// before, in which case Prepare refuses it.
func Prepare(dir string) error {
	_, unlock, err := newMount(dir, max(sizeSlack, minSize), unix.MS_RDONLY)
	if err != nil {
		return err
	}
	unlock()
	return nil
}

// Fill writes files into a spare made by Prepare, sized as Mount would size
// it, and makes it read-only. It refuses any mount that is not an empty
// tmpfs, so it can never mix its files into another set. Once it has
// started writing, a failure wipes and removes the spare, as Mount undoes
// its own mount.
func Fill(dir string, files []File, opts Options) (err error) {
	size, err := sizeFor(files, opts)
	if err != nil {
		return err
	}
	if dir, err = cleanDir(dir); err != nil {
		return err
	}
	unlock := lockDir(dir)
	defer unlock()
	if err := isTmpfsMountPoint(dir); err != nil {
		return fmt.Errorf("fill %s: %w", dir, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fill %s: %w", dir, err)
	}
	names, _ := d.Readdirnames(1)
	d.Close()
	if len(names) > 0 {
		return fmt.Errorf("fill %s: not an empty spare", dir)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, undoMount(dir, true))
		}
	}()
	// The spare (read-only, see Prepare) is made writable at the final
	// size, filled, and made read-only again.
	if err := unix.Mount("", dir, "", unix.MS_REMOUNT|mountFlags, fmt.Sprintf("size=%d", size)); err != nil {
		return fmt.Errorf("resize %s: %w", dir, err)
	}
	if err := publishFresh(dir, files); err != nil {
		return err
	}
	return makeReadOnly(dir)
}

// sizeFor checks files and sizes their mount, before anything is touched.
func sizeFor(files []File, opts Options) (int64, error) {
	if err := validateFiles(files); err != nil {
		return 0, err
	}
	return mountSize(files, opts.Size)
}

// newMount creates dir and mounts an empty tmpfs of size bytes on it,
// returning the cleaned path with dir's lock held. A fresh directory
// guarantees it never stacks on an existing mount and that cleanup only
// removes what it created.
func newMount(dir string, size int64, flags uintptr) (_ string, unlock func(), err error) {
	abs, err := absDir(dir)
	if err != nil {
		return "", nil, err
	}
	// Parents only need the daemon's access; the mount point itself must be
	// traversable by the unprivileged users of the files.
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return "", nil, fmt.Errorf("create parent of mount point %s: %w", abs, err)
	}
	if dir, err = cleanDir(abs); err != nil {
		return "", nil, err
	}
	unlock = lockDir(dir)
	if err := os.Mkdir(dir, 0o755); err != nil {
		unlock()
		return "", nil, fmt.Errorf("create mount point %s: %w", dir, err)
	}
	mounted := false
	defer func() {
		if err != nil {
			err = errors.Join(err, undoMount(dir, mounted))
			unlock()
		}
	}()
	if err := os.Chmod(dir, 0o755); err != nil { // the umask may have cut it
		return "", nil, fmt.Errorf("chmod mount point %s: %w", dir, err)
	}
	data := fmt.Sprintf("size=%d,mode=0755", size)
	if noswapFor(dir) {
		data += ",noswap"
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", mountFlags|flags, data); err != nil {
		return "", nil, fmt.Errorf("mount tmpfs at %s: %w", dir, err)
	}
	mounted = true
	return dir, unlock, nil
}

func undoMount(dir string, mounted bool) error {
	var errs []error
	if mounted {
		_, unmounted, err := wipeMounted(dir)
		errs = append(errs, err)
		if !unmounted {
			// Removing the directory would only fail, or worse, reach into the mount.
			return errors.Join(errs...)
		}
	}
	if err := os.Remove(dir); err != nil {
		errs = append(errs, fmt.Errorf("remove mount point %s: %w", dir, err))
	}
	return errors.Join(errs...)
}

// Update replaces the whole set of files in a mount made by Mount. Each
// visible file switches atomically from its old to its new content; a
// consistent multi-file snapshot is read through ..data (see the package
// comment).
//
// The mount is made read-only again even when Update fails. If a process
// still holds a file of a removed generation open, the kernel refuses to make
// the superblock read-only; Update then settles for making the mount itself
// read-only, which is what path-based access through dir goes by.
func Update(dir string, files []File) (err error) {
	if err := validateFiles(files); err != nil {
		return err
	}
	if dir, err = cleanDir(dir); err != nil {
		return err
	}
	unlock := lockDir(dir)
	defer unlock()

	// statfs and a device check, not a mountinfo scan: a rotation pays this
	// once per container, and mountinfo grows with every container.
	if err := isTmpfsMountPoint(dir); err != nil {
		return fmt.Errorf("update %s: %w", dir, err)
	}
	// Requiring our layout keeps a wrong path (/dev/shm is tmpfs too) from
	// having its top-level entries replaced.
	if _, err := currentGen(dir); err != nil {
		return fmt.Errorf("update %s: %w", dir, err)
	}
	// One remount makes it writable and, when the new set needs more room
	// than is left, larger: the new generation is written in full before
	// the old one goes.
	grow, err := growTo(dir, files)
	if err != nil {
		return fmt.Errorf("update %s: %w", dir, err)
	}
	data := ""
	if grow > 0 {
		data = fmt.Sprintf("size=%d", grow)
	}
	if err := unix.Mount("", dir, "", unix.MS_REMOUNT|mountFlags, data); err != nil {
		if grow > 0 {
			return fmt.Errorf("remount %s read-write and resize it to %d bytes: %w", dir, grow, err)
		}
		return fmt.Errorf("remount %s read-write: %w", dir, err)
	}
	defer func() { err = errors.Join(err, makeReadOnly(dir)) }()
	return publish(dir, files)
}

// growTo returns the size the tmpfs at dir must grow to before files can be
// written beside what it holds now, or 0 when it is large enough. It never
// shrinks a mount: Mount's own sizing (room for three copies plus slack) is
// the floor, so a set that grows by small steps does not resize every time.
func growTo(dir string, files []File) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	if st.Blocks == 0 {
		return 0, nil // mounted without a size limit: nothing to grow
	}
	bsize := int64(st.Bsize)
	size := int64(st.Blocks) * bsize
	used := int64(st.Blocks-st.Bfree) * bsize
	need := setPages(files)
	// Directories and symlinks cost no pages on tmpfs, but a page per file
	// of slack keeps a rounding difference from failing the write.
	want := used + need + int64(len(files)+1)*int64(os.Getpagesize())
	if want <= size {
		return 0, nil
	}
	def, err := mountSize(files, 0)
	if err != nil {
		return 0, err
	}
	return max(want, def), nil
}

// mountedAt reports, cheaply, whether a filesystem is mounted at dir (its
// device differs from its parent's) and whether it is a tmpfs.
func mountedAt(dir string) (mounted, isTmpfs bool, err error) {
	var self, parent unix.Stat_t
	if err := unix.Lstat(dir, &self); err != nil {
		return false, false, fmt.Errorf("wipe %s: %w", dir, err)
	}
	if err := unix.Stat(filepath.Dir(dir), &parent); err != nil {
		return false, false, fmt.Errorf("wipe %s: %w", dir, err)
	}
	if self.Dev == parent.Dev {
		return false, false, nil
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return true, false, fmt.Errorf("wipe %s: %w", dir, err)
	}
	return true, fs.Type == unix.TMPFS_MAGIC, nil
}

// isTmpfsMountPoint reports, cheaply, whether dir is the root of a tmpfs.
func isTmpfsMountPoint(dir string) error {
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return err
	}
	if fs.Type != unix.TMPFS_MAGIC {
		return fmt.Errorf("not a tmpfs")
	}
	var self, parent unix.Stat_t
	if err := unix.Stat(dir, &self); err != nil {
		return err
	}
	if err := unix.Stat(filepath.Dir(dir), &parent); err != nil {
		return err
	}
	if self.Dev == parent.Dev {
		return fmt.Errorf("not a mount point")
	}
	return nil
}

// Wipe zeroes every regular file in the tmpfs at dir, unmounts it (detaching
// it lazily if it is busy) and removes dir. A directory that is not mounted
// is just removed; one that does not exist is not an error. Wipe refuses to
// touch a mount that is not tmpfs.
func Wipe(dir string) (WipeResult, error) {
	var res WipeResult
	dir, err := cleanDir(dir)
	if err != nil {
		return res, err
	}
	unlock := lockDir(dir)
	defer unlock()

	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("wipe %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return res, fmt.Errorf("wipe %s: not a directory", dir)
	}

	var errs []error
	for i := 0; ; i++ {
		// statfs and stat, not a mountinfo scan each time round: an
		// Unmount pays this, and mountinfo grows with every container.
		mounted, isTmpfs, err := mountedAt(dir)
		if err != nil {
			return res, errors.Join(append(errs, err)...)
		}
		if !mounted {
			break
		}
		if !isTmpfs {
			return res, errors.Join(append(errs, fmt.Errorf("wipe %s: refusing to wipe a %s mount", dir, fsTypeAt(dir)))...)
		}
		if i == maxStacked {
			return res, errors.Join(append(errs, fmt.Errorf("wipe %s: still mounted after %d unmounts", dir, maxStacked))...)
		}
		lazy, unmounted, err := wipeMounted(dir)
		res.Lazy = res.Lazy || lazy
		errs = append(errs, err)
		if !unmounted {
			return res, errors.Join(errs...)
		}
	}

	if err := noMountsIn(dir); err != nil {
		return res, errors.Join(append(errs, err)...)
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, fmt.Errorf("remove %s: %w", dir, err))
	}
	return res, errors.Join(errs...)
}

// noMountsIn refuses a directory with anything mounted at or below it:
// RemoveAll would descend into it and delete another filesystem's files.
// At dir itself this catches what the device check cannot see, a bind
// mount from the parent's filesystem. statx says whether a directory is
// the root of a mount (Linux 5.8), so the check costs a walk of dir,
// normally one empty directory, where a scan of mountinfo grows with every
// mount on the host, twice per Unmount.
func noMountsIn(dir string) error {
	root, known, err := mountRoot(dir)
	if err != nil || !known {
		return noMountsInMountinfo(dir)
	}
	if root {
		return fmt.Errorf("wipe %s: a %s mount is on it", dir, fsTypeAt(dir))
	}
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("wipe %s: %w", dir, err)
		}
		if p == dir {
			return nil
		}
		// A file can be a mount point too (a bind mount of a file).
		if root, _, err := mountRoot(p); err != nil {
			return fmt.Errorf("wipe %s: %w", dir, err)
		} else if root {
			return fmt.Errorf("wipe %s: %s is mounted inside it", dir, p)
		}
		return nil
	})
}

// statxMountRoot is whether noMountsIn may ask statx; tests turn it off to
// run the mountinfo scan kernels before 5.8 get.
var statxMountRoot = true

// mountRoot reports whether p is the root of a mount, and whether the
// kernel could tell (known is false before Linux 5.8, or with
// statxMountRoot off).
func mountRoot(p string) (root, known bool, err error) {
	if !statxMountRoot {
		return false, false, nil
	}
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW|unix.AT_NO_AUTOMOUNT, unix.STATX_TYPE, &stx); err != nil {
		return false, false, &fs.PathError{Op: "statx", Path: p, Err: err}
	}
	return stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0, stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0, nil
}

// fsTypeAt names the filesystem mounted at dir, for an error message.
func fsTypeAt(dir string) string {
	if m, _ := mountAt(dir); m != nil {
		return m.fsType
	}
	return "non-tmpfs"
}

// noMountsInMountinfo is noMountsIn for kernels without statx's mount root
// attribute.
func noMountsInMountinfo(dir string) error {
	if m, err := mountAt(dir); err != nil {
		return err
	} else if m != nil {
		return fmt.Errorf("wipe %s: a %s mount is on it", dir, m.fsType)
	}
	under, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	if len(under) > 0 {
		return fmt.Errorf("wipe %s: %s is mounted inside it", dir, under[0])
	}
	return nil
}

// wipeMounted zeroes and unmounts the top mount at dir. It always tries to
// unmount, even when zeroing failed, so secrets at least leave the namespace.
func wipeMounted(dir string) (lazy, unmounted bool, err error) {
	var errs []error
	if err := remount(dir, mountFlags); err != nil {
		errs = append(errs, fmt.Errorf("remount %s read-write to zero it: %w", dir, err))
	} else {
		errs = append(errs, zeroTree(dir))
	}
	lazy, err = unmount(dir)
	errs = append(errs, err)
	return lazy, err == nil, errors.Join(errs...)
}

// IsMounted reports whether dir is a mount point.
func IsMounted(dir string) (bool, error) {
	dir, err := cleanDir(dir)
	if err != nil {
		return false, err
	}
	m, err := mountAt(dir)
	return m != nil, err
}

// Read returns the files of the current generation by relative path, from a
// single generation even while Update runs.
func Read(dir string) (map[string][]byte, error) {
	dir, err := cleanDir(dir)
	if err != nil {
		return nil, err
	}
	for range 100 {
		gen, err := currentGen(dir)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", dir, err)
		}
		files, readErr := readTree(filepath.Join(dir, gen))
		again, err := currentGen(dir)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", dir, err)
		}
		if again == gen {
			if readErr != nil {
				return nil, readErr
			}
			return files, nil
		}
	}
	return nil, fmt.Errorf("read %s: generation kept changing", dir)
}

func readTree(root string) (map[string][]byte, error) {
	files := make(map[string][]byte)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)] = data
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", root, err)
	}
	return files, nil
}

func remount(dir string, flags uintptr) error {
	return unix.Mount("", dir, "", unix.MS_REMOUNT|flags, "")
}

// makeReadOnly prefers a read-only superblock, which also covers bind mounts
// of it elsewhere. The kernel refuses that (EBUSY) while an unlinked file is
// still open, which is normal right after Update removed a generation a
// reader was reading; then the mount itself is made read-only. It does not
// retry: the superblock stays busy for as long as a reader keeps a retired
// file open, and every mount of it (this one, and the container's bind,
// cloned while this one was read-only) is read-only by itself.
func makeReadOnly(dir string) error {
	flags := uintptr(unix.MS_RDONLY | mountFlags)
	err := remount(dir, flags)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("remount %s read-only: %w", dir, err)
	}
	if err := remount(dir, flags|unix.MS_BIND); err != nil {
		return fmt.Errorf("remount %s read-only (mount only, superblock busy): %w", dir, err)
	}
	return nil
}

func unmount(dir string) (lazy bool, err error) {
	err = unix.Unmount(dir, unix.UMOUNT_NOFOLLOW)
	if err == nil {
		return false, nil
	}
	if !errors.Is(err, unix.EBUSY) {
		return false, fmt.Errorf("unmount %s: %w", dir, err)
	}
	if err := unix.Unmount(dir, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil {
		return false, fmt.Errorf("detach busy mount %s: %w", dir, err)
	}
	return true, nil
}

func absDir(dir string) (string, error) {
	if dir == "" {
		return "", errors.New("empty mount point path")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("resolve mount point %s: %w", dir, err)
	}
	if abs == "/" {
		return "", errors.New("refusing to use / as a mount point")
	}
	return abs, nil
}

// cleanDir makes dir comparable with mount points in mountinfo, which the
// kernel prints with symlinks resolved. The last component is deliberately
// left alone so a symlink planted there is never followed.
func cleanDir(dir string) (string, error) {
	abs, err := absDir(dir)
	if err != nil {
		return "", err
	}
	parent, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		return abs, nil // the parent does not exist (yet); nothing can be mounted there
	}
	return filepath.Join(parent, filepath.Base(abs)), nil
}

// locks serialises operations on one directory, since a Wipe racing an
// Update would otherwise remove or zero files Update is still swapping in.
var locks = struct {
	sync.Mutex
	m map[string]*dirLock
}{m: make(map[string]*dirLock)}

type dirLock struct {
	mu   sync.Mutex
	refs int
}

func lockDir(dir string) (unlock func()) {
	locks.Lock()
	l := locks.m[dir]
	if l == nil {
		l = &dirLock{}
		locks.m[dir] = l
	}
	l.refs++
	locks.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		locks.Lock()
		if l.refs--; l.refs == 0 {
			delete(locks.m, dir)
		}
		locks.Unlock()
	}
}
