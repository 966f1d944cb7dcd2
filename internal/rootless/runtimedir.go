package rootless

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// CheckRuntimeDir refuses a $XDG_RUNTIME_DIR this user does not own, or
// that anyone else may write to: whoever can write there can put a socket
// of their own where the CLI sends secrets, or replace the engine's.
func CheckRuntimeDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("XDG_RUNTIME_DIR %s: %w", dir, err)
	}
	return ownedPrivate("XDG_RUNTIME_DIR", dir, fi)
}

// PrepareRuntimeDir checks dir (CheckRuntimeDir) and makes the directory
// of secretd's socket and mounts in it, mode 0700: only this user reaches
// the API socket. One left by an older secretd with a wider mode is
// tightened; one another user owns is refused.
func PrepareRuntimeDir(dir string) error {
	if err := CheckRuntimeDir(dir); err != nil {
		return err
	}
	own := filepath.Dir(SocketPath(dir))
	err := os.Mkdir(own, 0o700)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create %s: %w", own, err)
	}
	fi, err := os.Lstat(own)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory: remove it, secretd keeps its socket there", own)
	}
	if err := ownedBy(own, fi); err != nil {
		return err
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(own, 0o700); err != nil {
			return fmt.Errorf("tighten %s to 0700: %w", own, err)
		}
	}
	return nil
}

// ownedBy refuses what this user does not own.
func ownedBy(path string, fi fs.FileInfo) error {
	sys, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: cannot read its owner", path)
	}
	if int(sys.Uid) != os.Geteuid() {
		return fmt.Errorf("%s belongs to uid %d, not to this user (uid %d): secretd keeps its socket and mounts only in a directory of its user's", path, sys.Uid, os.Geteuid())
	}
	return nil
}

// ownedPrivate refuses a directory this user does not own or that group or
// others may write.
func ownedPrivate(what, path string, fi fs.FileInfo) error {
	if !fi.IsDir() {
		return fmt.Errorf("%s %s is not a directory", what, path)
	}
	if err := ownedBy(path, fi); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("%s %s has mode %04o: others may write to it, and so replace the sockets in it; it must be writable by its user only (chmod 700 %s)", what, path, perm, path)
	}
	return nil
}
