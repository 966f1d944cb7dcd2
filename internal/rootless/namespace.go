package rootless

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/secretd/secretd/tmpfs"
)

// InEngineNamespaces checks that this process shares pid's user and mount
// namespaces: the daemon proper must mount and serve where that engine
// looks, and a pid reused by another process fails here.
func InEngineNamespaces(pid int) error {
	for _, ns := range []string{"user", "mnt"} {
		self, err := os.Readlink(filepath.Join("/proc/self/ns", ns))
		if err != nil {
			return fmt.Errorf("read own %s namespace: %w", ns, err)
		}
		theirs, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
		if err != nil {
			return fmt.Errorf("read the %s namespace of dockerd (pid %d): %w", ns, pid, err)
		}
		if self != theirs {
			return fmt.Errorf("not in the %s namespace of dockerd (pid %d): the engine pid is for secretd's own use; run 'secretd daemon --rootless' instead", ns, pid)
		}
	}
	return nil
}

// UntilExit returns a context that ends with ctx or when process pid exits,
// and a function that reports whether it was the process that ended it.
// A pidfd follows the process itself, so a reused pid cannot fool it.
func UntilExit(ctx context.Context, pid int) (context.Context, func() bool, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("watch dockerd (pid %d): %w", pid, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	exited := make(chan struct{})
	go func() {
		defer unix.Close(fd)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for ctx.Err() == nil {
			// A bounded wait, so the goroutine ends with ctx too.
			n, err := unix.Poll(fds, 500)
			if err != nil && !errors.Is(err, unix.EINTR) {
				return
			}
			if n > 0 {
				close(exited)
				cancel()
				return
			}
		}
	}()
	return ctx, func() bool {
		select {
		case <-exited:
			return true
		default:
			return false
		}
	}, nil
}

// WipeMounts zeroes and unmounts every tmpfs directly under root. It is for
// the namespace of an engine that is gone: no container there runs any more,
// and whatever stays mounted would live on in memory for as long as any
// process holds the namespace.
func WipeMounts(root string) (int, error) {
	dirs, err := tmpfs.Mounts(root)
	if err != nil {
		return 0, err
	}
	var errs []error
	n := 0
	for _, d := range dirs {
		if _, err := tmpfs.Wipe(d); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}
