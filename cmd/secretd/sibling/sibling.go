// Package sibling finds and runs secretd's sibling binaries: secretd-daemon
// and secretd-compose hold the commands that link the daemon or compose-go,
// so that the secretd CLI starts without initialising either. As git runs
// git-* programs, secretd replaces itself with the sibling (exec), which
// keeps the pid, signals, stdin and the exit status the user's.
package sibling

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Daemon and Compose are the siblings' file names.
const (
	Daemon  = "secretd-daemon"
	Compose = "secretd-compose"
)

// LibexecDir is where `make install` puts the siblings, relative to the
// directory holding secretd: PREFIX/bin/secretd finds them in
// PREFIX/libexec/secretd.
const LibexecDir = "../libexec/secretd"

// Candidates returns where the sibling name is looked for, in order, for the
// executable exe: beside it, then the install's libexec directory. exe's
// symbolic links are resolved first, so a link to an installed secretd
// finds the installed siblings.
func Candidates(exe, name string) []string {
	if resolved, err := filepath.EvalSymlinks(exe); err == nil {
		exe = resolved
	}
	dir := filepath.Dir(exe)
	return []string{filepath.Join(dir, name), filepath.Clean(filepath.Join(dir, LibexecDir, name))}
}

// Find returns the path of the sibling name of the running executable.
func Find(name string) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("%s: cannot tell where secretd is installed: %w", name, err)
	}
	return find(Candidates(exe, name), name)
}

func find(candidates []string, name string) (string, error) {
	for _, p := range candidates {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("this command is in %s, which is neither at %s nor at %s: install secretd's three binaries together (make install puts %s in PREFIX/libexec/secretd)",
		name, candidates[0], candidates[1], name)
}

// Exec replaces the process with the sibling name, run with args (the
// command line after the program name) and the same environment. It
// returns only when the sibling cannot be found or started.
func Exec(name string, args []string) error {
	path, err := Find(name)
	if err != nil {
		return err
	}
	argv := append([]string{path}, args...)
	if err := syscall.Exec(path, argv, os.Environ()); err != nil {
		return fmt.Errorf("run %s: %w", path, err)
	}
	return nil
}
