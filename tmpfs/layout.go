package tmpfs

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"
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
// generation, atomic swap of ..data, top-level links, then removal of every
// other generation (including leftovers of an interrupted earlier call).
func publish(dir string, files []File) error {
	prev, _ := currentGen(dir) // none on the first publish
	gen, err := writeGeneration(dir, files)
	if err != nil {
		return err
	}
	if err := swapData(dir, gen); err != nil {
		return errors.Join(err, discard(filepath.Join(dir, gen)))
	}
	return errors.Join(syncLinks(dir, files), removeStale(dir, gen, prev))
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

func writeFile(root string, f File) error {
	parts := strings.Split(f.Path, "/")
	cur := root
	for _, part := range parts[:len(parts)-1] {
		cur = filepath.Join(cur, part)
		if err := mkdirRoot(cur); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	p := filepath.Join(root, filepath.FromSlash(f.Path))
	// 0600 until the data is complete, so nobody else can open it half written.
	fd, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", p, err)
	}
	if _, err = fd.Write(f.Data); err != nil {
		err = fmt.Errorf("write %s: %w", p, err)
	} else if err = fd.Chown(f.UID, f.GID); err != nil {
		err = fmt.Errorf("chown %s to %d:%d: %w", p, f.UID, f.GID, err)
	} else if err = fd.Chmod(f.Mode); err != nil { // after chown, which may clear mode bits
		err = fmt.Errorf("chmod %s to %v: %w", p, f.Mode, err)
	}
	if cerr := fd.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close %s: %w", p, cerr)
	}
	return err
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
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
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

// syncLinks adds links for new top-level names before dropping old ones, so
// names present in both sets stay reachable throughout.
func syncLinks(dir string, files []File) error {
	want := make(map[string]bool)
	for _, f := range files {
		want[strings.SplitN(f.Path, "/", 2)[0]] = true
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(want)) {
		target := dataLink + "/" + name
		p := filepath.Join(dir, name)
		cur, err := os.Readlink(p)
		switch {
		case err == nil && cur == target:
		case errors.Is(err, fs.ErrNotExist):
			errs = append(errs, symlinkRoot(target, p))
		default:
			errs = append(errs, replaceSymlink(target, p, filepath.Join(dir, linkTmp)))
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("list %s: %w", dir, err))...)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "..") || want[e.Name()] {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := os.Remove(p); err != nil {
			errs = append(errs, fmt.Errorf("remove dropped entry %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// removeStale discards every reserved entry except ..data, gen and prev:
// older generations, and whatever an interrupted call left behind. prev
// stays intact one more round for readers that resolved it before the swap.
func removeStale(dir, gen, prev string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, "..") || name == dataLink || name == gen || name == prev {
			continue
		}
		errs = append(errs, discard(filepath.Join(dir, name)))
	}
	return errors.Join(errs...)
}

// discard zeroes before removing because tmpfs hands freed pages back to the
// kernel with their contents intact.
func discard(p string) error {
	err := zeroTree(p)
	if rerr := os.RemoveAll(p); rerr != nil {
		err = errors.Join(err, fmt.Errorf("remove %s: %w", p, rerr))
	}
	return err
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
