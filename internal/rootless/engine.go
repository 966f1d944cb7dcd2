// Package rootless holds what secretd needs to serve an unprivileged user's
// rootless Docker engine: finding that engine through $XDG_RUNTIME_DIR,
// following it into its user and mount namespaces, and rejoining the new
// namespaces when the engine restarts.
//
// A rootless dockerd runs inside namespaces made by RootlessKit. It looks for
// legacy plugin sockets in its private /run/docker/plugins and bind-mounts
// volume paths as its own mount namespace sees them, so secretd has to serve
// and mount from inside. A multithreaded Go process cannot setns(2) into a
// user namespace, so secretd runs in two processes: a supervisor on the host
// and the daemon proper, started through nsenter(1) in the engine's
// namespaces and started again in the new ones whenever the engine restarts.
package rootless

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrNoEngine means no rootless engine of this user is running.
var ErrNoEngine = errors.New("no rootless docker engine is running")

// Engine is a running rootless dockerd of this user.
type Engine struct {
	// PID is dockerd's process ID, read from $XDG_RUNTIME_DIR/docker.pid.
	// Its user and mount namespaces are RootlessKit's.
	PID int
	// Host is the engine API, unix://$XDG_RUNTIME_DIR/docker.sock, a path
	// the host and the engine's namespaces both see.
	Host string
}

// Paths are where a rootless secretd keeps its files by default.
type Paths struct {
	// RuntimeDir is $XDG_RUNTIME_DIR: docker.pid, docker.sock and secretd/.
	RuntimeDir string
	// DataRoot holds the encrypted store: $XDG_DATA_HOME/secretd.
	DataRoot string
	// Host is the API socket the CLI finds when not root.
	Host string
	// MountRoot holds one tmpfs per container mount, as the engine's mount
	// namespace sees it (the host sees only empty directories there).
	MountRoot string
	// PluginDir is where the rootless dockerd looks for plugin sockets:
	// RootlessKit's private /run, not the host's.
	PluginDir string
}

// DefaultPaths derives the rootless defaults from the XDG environment of
// the current user.
func DefaultPaths() (Paths, error) {
	rt := os.Getenv("XDG_RUNTIME_DIR")
	if rt == "" {
		return Paths{}, errors.New("XDG_RUNTIME_DIR is not set: rootless Docker and secretd --rootless keep their sockets there (log in through a session that sets it, or export XDG_RUNTIME_DIR=/run/user/$(id -u))")
	}
	if !filepath.IsAbs(rt) {
		return Paths{}, fmt.Errorf("XDG_RUNTIME_DIR %q is not an absolute path", rt)
	}
	data := os.Getenv("XDG_DATA_HOME")
	if data == "" || !filepath.IsAbs(data) {
		home, err := os.UserHomeDir()
		if err != nil {
			return Paths{}, fmt.Errorf("find the data directory: set XDG_DATA_HOME or HOME: %w", err)
		}
		data = filepath.Join(home, ".local", "share")
	}
	return Paths{
		RuntimeDir: rt,
		DataRoot:   filepath.Join(data, "secretd"),
		Host:       "unix://" + SocketPath(rt),
		MountRoot:  filepath.Join(rt, "secretd", "mounts"),
		PluginDir:  "/run/docker/plugins",
	}, nil
}

// SocketPath is the rootless API socket under runtimeDir.
func SocketPath(runtimeDir string) string {
	return filepath.Join(runtimeDir, "secretd", "secretd.sock")
}

// FindEngine finds this user's rootless engine through runtimeDir: a live
// dockerd named by docker.pid, running in a user namespace of its own. Each
// way of not finding one gets an error that says what to do.
//
// It does not wait for the engine's API to answer: a starting dockerd
// looks up the volume plugins of its existing volumes and containers (for
// up to 15 seconds each) before it serves, so secretd must be there first.
func FindEngine(runtimeDir string) (Engine, error) {
	pidFile := filepath.Join(runtimeDir, "docker.pid")
	b, err := os.ReadFile(pidFile)
	if errors.Is(err, os.ErrNotExist) {
		return Engine{}, fmt.Errorf("%w: %s does not exist: start it first (systemctl --user start docker, or dockerd-rootless.sh)", ErrNoEngine, pidFile)
	}
	if err != nil {
		return Engine{}, fmt.Errorf("read %s: %w", pidFile, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return Engine{}, fmt.Errorf("%w: %s does not hold a process ID (%q): remove it and start the engine", ErrNoEngine, pidFile, strings.TrimSpace(string(b)))
	}
	if err := checkDockerd(pid); err != nil {
		return Engine{}, fmt.Errorf("%w: stale %s: %v; the engine is not running: start it (systemctl --user start docker, or dockerd-rootless.sh)", ErrNoEngine, pidFile, err)
	}
	self, err1 := os.Readlink("/proc/self/ns/user")
	theirs, err2 := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", pid))
	if err := errors.Join(err1, err2); err != nil {
		return Engine{}, fmt.Errorf("read the user namespace of dockerd (pid %d): %w", pid, err)
	}
	if self == theirs {
		return Engine{}, fmt.Errorf("dockerd (pid %d) named by %s is not a rootless engine: it runs in this user namespace, not in RootlessKit's (start it with dockerd-rootless.sh)", pid, pidFile)
	}
	return Engine{PID: pid, Host: "unix://" + filepath.Join(runtimeDir, "docker.sock")}, nil
}

// APIVersion asks the engine's /_ping for the highest API version it
// speaks, and fails if it does not answer within a second.
func (e Engine) APIVersion(ctx context.Context) (string, error) {
	return ping(ctx, strings.TrimPrefix(e.Host, "unix://"))
}

// checkDockerd fails unless pid is a live dockerd of this user: a pid file
// left by a dead engine may name a process that reused its number.
func checkDockerd(pid int) error {
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return fmt.Errorf("process %d is gone", pid)
	}
	if name := strings.TrimSpace(string(comm)); name != "dockerd" {
		return fmt.Errorf("process %d is %q, not dockerd", pid, name)
	}
	fi, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	if err != nil {
		return fmt.Errorf("process %d is gone", pid)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return fmt.Errorf("process %d belongs to uid %d, not to this user", pid, st.Uid)
	}
	return nil
}

// ping asks the engine's /_ping, which answers "OK" and its API version
// once dockerd serves.
func ping(ctx context.Context, sock string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	c := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	defer c.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/_ping", nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) {
			return "", op.Err
		}
		return "", err
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("/_ping answered %s", resp.Status)
	}
	v := resp.Header.Get("Api-Version")
	if v == "" {
		return "", errors.New("/_ping answered without an API version")
	}
	return v, nil
}
