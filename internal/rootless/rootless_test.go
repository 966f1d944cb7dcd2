package rootless

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestDefaultPaths(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
	t.Setenv("XDG_DATA_HOME", "")
	t.Setenv("HOME", "/home/ann")
	p, err := DefaultPaths()
	if err != nil {
		t.Fatal(err)
	}
	want := Paths{
		RuntimeDir: "/run/user/1000",
		DataRoot:   "/home/ann/.local/share/secretd",
		Host:       "unix:///run/user/1000/secretd/secretd.sock",
		MountRoot:  "/run/user/1000/secretd/mounts",
		PluginDir:  "/run/docker/plugins",
	}
	if p != want {
		t.Errorf("got %+v, want %+v", p, want)
	}
	t.Setenv("XDG_DATA_HOME", "/data/ann")
	if p, _ := DefaultPaths(); p.DataRoot != "/data/ann/secretd" {
		t.Errorf("XDG_DATA_HOME: data root %s, want /data/ann/secretd", p.DataRoot)
	}
	t.Setenv("XDG_RUNTIME_DIR", "")
	if _, err := DefaultPaths(); err == nil || !strings.Contains(err.Error(), "XDG_RUNTIME_DIR is not set") {
		t.Errorf("no XDG_RUNTIME_DIR: got %v", err)
	}
}

// TestFindEngineRefuses: every way of having no engine names the file and
// says what to do, and none is taken for an engine.
func TestFindEngineRefuses(t *testing.T) {
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, pid, want string
	}{
		{"no pid file", "", "docker.pid does not exist: start it first"},
		{"garbage", "dockerd\n", "does not hold a process ID"},
		{"stale", strconv.Itoa(gone.Process.Pid), "is gone"},
		{"not dockerd", strconv.Itoa(os.Getpid()), "not dockerd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.pid != "" {
				if err := os.WriteFile(filepath.Join(dir, "docker.pid"), []byte(tc.pid), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := FindEngine(dir)
			if !errors.Is(err, ErrNoEngine) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want ErrNoEngine saying %q", err, tc.want)
			}
		})
	}
}

func TestUntilExit(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	ctx, gone, err := UntilExit(context.Background(), cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if gone() {
		t.Fatal("reported gone while running")
	}
	cmd.Process.Kill()
	cmd.Wait()
	<-ctx.Done()
	if !gone() {
		t.Error("context ended but the exit is not reported")
	}

	// A context ended by its parent is not an exit.
	cmd2 := exec.Command("sleep", "60")
	if err := cmd2.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd2.Process.Kill(); cmd2.Wait() }()
	parent, cancel := context.WithCancel(context.Background())
	ctx, gone, err = UntilExit(parent, cmd2.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	<-ctx.Done()
	if gone() {
		t.Error("a cancelled context is reported as the process's exit")
	}
}

func TestInEngineNamespaces(t *testing.T) {
	if err := InEngineNamespaces(os.Getpid()); err != nil {
		t.Errorf("own pid: %v", err)
	}
	if err := InEngineNamespaces(1 << 30); err == nil {
		t.Error("a pid that does not exist passes")
	}
}

func TestSupervisorRefusesRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: checks the refusal of root")
	}
	dir := t.TempDir()
	err := Supervisor{RuntimeDir: dir, StateDir: filepath.Join(dir, "data")}.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "not as root") {
		t.Errorf("got %v, want a refusal of root", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("a refused start left %s behind", ents[0].Name())
	}
}

// TestRuntimeDirChecked: a $XDG_RUNTIME_DIR another user owns, or that
// group or others may write to, is refused; secretd's directory in it is
// made 0700, an older one with a wider mode is tightened, and one another
// user owns is refused.
func TestRuntimeDirChecked(t *testing.T) {
	rt := t.TempDir()
	if err := PrepareRuntimeDir(rt); err != nil {
		t.Fatal(err)
	}
	own := filepath.Join(rt, "secretd")
	if fi, err := os.Stat(own); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("secretd's runtime directory: %v, %v; want 0700", fi.Mode(), err)
	}
	if err := os.Chmod(own, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := PrepareRuntimeDir(rt); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(own); fi.Mode().Perm() != 0o700 {
		t.Errorf("a 0755 directory left by an older secretd is %v, want tightened to 0700", fi.Mode())
	}
	for _, mode := range []os.FileMode{0o777, 0o770, 0o1777} {
		os.Chmod(rt, mode)
		if err := PrepareRuntimeDir(rt); err == nil || !strings.Contains(err.Error(), "others may write to it") {
			t.Errorf("runtime dir mode %v: %v", mode, err)
		}
	}
	os.Chmod(rt, 0o700)
	if os.Geteuid() != 0 {
		return
	}
	if err := os.Chown(own, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := PrepareRuntimeDir(rt); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Errorf("secretd's directory owned by another user: %v", err)
	}
	if err := os.Chown(rt, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := CheckRuntimeDir(rt); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Errorf("a runtime dir owned by another user: %v", err)
	}
}
