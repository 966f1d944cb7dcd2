// Package atomicfile replaces small state files so that a reader, or the
// next start after a crash, sees either the old content or the new, never
// a file half written.
package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
)

// Write replaces path with b, mode 0600: a temporary file beside it
// (path.tmp) is written, synced and renamed over it, and the directory is
// synced, so the new content also survives a crash of the host.
func Write(path string, b []byte) error { return write(path, b, true) }

// WriteUnsynced is Write without the syncs, for a file that only has to
// outlive a crash of the process (the page cache keeps it): it is still
// never seen half written.
func WriteUnsynced(path string, b []byte) error { return write(path, b, false) }

func write(path string, b []byte, sync bool) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.Write(b)
	var serr error
	if sync {
		serr = f.Sync()
	}
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	if sync {
		if d, err := os.Open(filepath.Dir(path)); err == nil {
			d.Sync()
			d.Close()
		}
	}
	return nil
}
