package compose

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// MaxFileSize is Swarm's limit on a secret: a `file:` secret must be
// strictly smaller (500 KiB), as `docker secret create` requires.
const MaxFileSize = 500 * 1024

// ReadSecretFile reads the file of a `file:` secret. It follows symlinks,
// as docker stack deploy (which reads the file) and compose (which
// bind-mounts it) do, but reads only a regular file smaller than
// MaxFileSize, and checks both before reading a byte:
//
//  1. stat the path: anything but a regular file (a FIFO, whose open
//     blocks; a device, which may never end or act on being read; a
//     directory; a socket) is refused without being opened, and so is a
//     file of MaxFileSize bytes or more;
//  2. open it without blocking and without taking a terminal, and fstat
//     what was opened: it must be the file step 1 saw (same device and
//     inode), so one swapped in between is not read;
//  3. read at most MaxFileSize bytes: a file that grew meanwhile is
//     refused rather than cut short.
func ReadSecretFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if err := secretFileOK(path, fi); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	opened, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !os.SameFile(fi, opened) {
		return nil, fmt.Errorf("secret file %s changed while it was opened: run again", path)
	}
	if err := secretFileOK(path, opened); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize))
	if err != nil {
		clear(data)
		return nil, err
	}
	if len(data) >= MaxFileSize {
		clear(data)
		return nil, fmt.Errorf("secret file %s grew to %d bytes or more while it was read: a secret must be smaller than 500 KiB", path, MaxFileSize)
	}
	return data, nil
}

// secretFileOK refuses what ReadSecretFile must not read.
func secretFileOK(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("secret file %s is %s, not a regular file: give a file holding the secret", path, fileKind(fi.Mode()))
	}
	if fi.Size() >= MaxFileSize {
		return fmt.Errorf("secret file %s is %d bytes: a secret must be smaller than 500 KiB (%d bytes)", path, fi.Size(), MaxFileSize)
	}
	return nil
}

// fileKind names a file type the way a user would.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "a special file"
}
