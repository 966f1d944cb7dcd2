package tmpfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// ErrInvalid marks a file set or option that Mount and Update refuse before touching anything.
var ErrInvalid = errors.New("invalid file set")

type invalidError struct{ msg string }

func (e *invalidError) Error() string        { return e.msg }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

func invalidf(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}

func validateFiles(files []File) error {
	seen := make(map[string]bool, len(files))
	for _, f := range files {
		if err := validatePath(f.Path); err != nil {
			return err
		}
		if seen[f.Path] {
			return invalidf("file path %q appears twice", f.Path)
		}
		seen[f.Path] = true
		if f.Mode&^fs.ModePerm != 0 {
			return invalidf("file %q: mode %v has bits other than permissions", f.Path, f.Mode)
		}
		// Chown treats -1 as "leave unchanged", which would silently leave root as owner.
		if f.UID < 0 || f.GID < 0 {
			return invalidf("file %q: negative owner %d:%d", f.Path, f.UID, f.GID)
		}
	}
	for _, f := range files {
		for i := range len(f.Path) {
			if f.Path[i] == '/' && seen[f.Path[:i]] {
				return invalidf("file path %q is also a directory in %q", f.Path[:i], f.Path)
			}
		}
	}
	return nil
}

func validatePath(p string) error {
	switch {
	case p == "":
		return invalidf("empty file path")
	case strings.HasPrefix(p, "/"):
		return invalidf("file path %q is absolute", p)
	case strings.ContainsRune(p, 0):
		return invalidf("file path %q contains a NUL byte", p)
	}
	parts := strings.Split(p, "/")
	for _, part := range parts {
		switch part {
		case "":
			return invalidf("file path %q has an empty component", p)
		case ".", "..":
			return invalidf("file path %q has a %q component", p, part)
		}
	}
	if strings.HasPrefix(parts[0], "..") {
		return invalidf("file path %q starts with \"..\", which is reserved for the mount layout", p)
	}
	return nil
}

// mountSize counts whole pages per file because tmpfs charges its size
// limit in pages.
func mountSize(files []File, size int64) (int64, error) {
	need := setPages(files)
	// Update writes the new set beside the current one; room for a third
	// copy lets a set grow a little without Update having to resize.
	need *= 3
	switch {
	case size < 0:
		return 0, invalidf("negative tmpfs size %d", size)
	case size == 0:
		return max(sizeSlack+need, minSize), nil
	case size < need:
		return 0, invalidf("tmpfs size %d is below the %d bytes three copies of the files need", size, need)
	}
	return size, nil
}

// setPages is the memory a set takes on tmpfs, in whole pages.
func setPages(files []File) int64 {
	page := int64(os.Getpagesize())
	var need int64
	for _, f := range files {
		need += (int64(len(f.Data)) + page - 1) / page * page
	}
	return need
}
