package daemon

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/secretd/secretd/internal/mountroot"
	"github.com/secretd/secretd/tmpfs"
)

// privateDir makes sure a root only its owner can read: the data root holds
// the store and the key file, the mount root every container's plaintext.
// An empty root (a directory Docker or a package manager just made 0755) is
// tightened to 0700; one that already holds files is refused, since
// whatever is in it may have been read already.
func privateDir(flag, dir string, log *slog.Logger) error {
	st, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("%s %s: %w", flag, dir, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("%s %s is not a directory (a symlink or a file): give secretd a directory of its own", flag, dir)
	}
	perm := st.Mode().Perm()
	if perm&0o077 == 0 {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("%s %s: %w", flag, dir, err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("%s %s has mode %04o: group and others must not reach what secretd keeps there; run 'chmod 700 %s' and check who read it", flag, dir, perm, dir)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("%s %s has mode %04o and cannot be made 0700: %w", flag, dir, perm, err)
	}
	log.Info("tightened an empty root to mode 0700", "flag", flag, "dir", dir, "was", fmt.Sprintf("%04o", perm))
	return nil
}

// checkMountRoot refuses a mount root holding anything secretd did not put
// there: a mistyped --mount-root (/home, /srv) must not have its
// directories taken for leftovers of crashed containers and wiped. A
// directory under another name is secretd's only while a tmpfs is mounted
// on it or a task record names it.
func checkMountRoot(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("--mount-root %s: %w", dir, err)
	}
	real, err := filepath.Abs(dir)
	if err == nil {
		real, err = filepath.EvalSymlinks(real)
	}
	if err != nil {
		return fmt.Errorf("--mount-root %s: %w", dir, err)
	}
	mounts, err := tmpfs.Mounts(real)
	if err != nil {
		return fmt.Errorf("--mount-root %s: %w", dir, err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	var foreign []string
	for _, e := range entries {
		n := e.Name()
		switch {
		case e.IsDir() && mountroot.MountDir(n, slices.Contains(names, n+mountroot.RecordSuffix)):
		case e.IsDir() && slices.Contains(mounts, filepath.Join(real, n)):
		case mountroot.Marker(n):
		case !e.IsDir() && e.Type().IsRegular() && mountroot.Record(n):
		default:
			foreign = append(foreign, n)
		}
	}
	if len(foreign) == 0 {
		return nil
	}
	shown := foreign
	if len(shown) > 5 {
		shown = append(slices.Clone(shown[:5]), fmt.Sprintf("and %d more", len(foreign)-5))
	}
	return fmt.Errorf("--mount-root %s holds entries secretd did not make (%s): secretd removes what it takes for leftovers there, so give it an empty directory of its own (the default is /run/secretd/mounts)", dir, strings.Join(shown, ", "))
}
