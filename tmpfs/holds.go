package tmpfs

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// Holds reports whether the mount at dir shows exactly files, in one
// complete generation: the same paths, content, owners and modes, every
// visible name linked to the current generation, and no other generation
// left. A daemon that restarts adopts mounts without knowing which versions
// they hold; rewriting one that already holds the current set would retire,
// and zero, the files its container may be reading at that moment.
//
// An error means the mount could not be read as this package lays it out;
// the caller rewrites it, which repairs what an interrupted Update left.
func Holds(dir string, files []File) (bool, error) {
	if err := validateFiles(files); err != nil {
		return false, err
	}
	dir, err := cleanDir(dir)
	if err != nil {
		return false, err
	}
	unlock := lockDir(dir)
	defer unlock()
	if err := isTmpfsMountPoint(dir); err != nil {
		return false, fmt.Errorf("read %s: %w", dir, err)
	}
	gen, err := currentGen(dir)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", dir, err)
	}
	top, err := os.ReadDir(dir)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", dir, err)
	}
	for _, e := range top {
		if n := e.Name(); strings.HasPrefix(n, "..") && n != dataLink && n != gen {
			return false, nil // an older generation or a leftover of an interrupted call
		}
	}
	want := make(map[string]File, len(files))
	dirs := map[string]bool{} // the visible directories that lead to a file
	for _, f := range files {
		want[f.Path] = f
		for d := path.Dir(f.Path); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	seen := 0
	same := true
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		switch {
		case rel == ".":
			return nil
		case !strings.Contains(rel, "/") && strings.HasPrefix(rel, ".."):
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		case d.IsDir():
			if !dirs[rel] {
				same = false // an Update would prune it
				return filepath.SkipAll
			}
			return nil
		}
		f, ok := want[rel]
		if !ok || !d.Type().IsRegular() {
			same = false
			return filepath.SkipAll
		}
		seen++
		ok, err = holdsFile(p, filepath.Join(dir, gen, filepath.FromSlash(rel)), f)
		if err == nil && !ok {
			same = false
			return filepath.SkipAll
		}
		return err
	})
	if err != nil {
		return false, fmt.Errorf("read %s: %w", dir, err)
	}
	return same && seen == len(want), nil
}

// holdsFile compares the visible file p, which must be the generation's
// file in gen, with f.
func holdsFile(p, inGen string, f File) (bool, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return false, err
	}
	gi, err := os.Lstat(inGen)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || !os.SameFile(fi, gi) || fi.Mode().Perm() != f.Mode.Perm() ||
		int(st.Uid) != f.UID || int(st.Gid) != f.GID || fi.Size() != int64(len(f.Data)) {
		return false, nil
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return false, err
	}
	defer clear(b)
	return subtle.ConstantTimeCompare(b, f.Data) == 1, nil
}
