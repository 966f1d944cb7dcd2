// Package secretdtest starts a real secretd daemon for a test: its own data
// root, API socket, mount root and volume driver name, so it runs beside any
// other secretd on the host. A test creates secrets through it and starts
// containers with the mount it hands back; cleanup stops the daemon and
// checks nothing stays mounted.
//
// The daemon mounts tmpfs and serves a Docker plugin socket, so tests that
// use this package run as root next to a Docker Engine.
package secretdtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/mount"

	"github.com/secretd/secretd/api/client"
	"github.com/secretd/secretd/internal/mountroot"
)

// Options configure Start.
type Options struct {
	// Binary is the secretd executable; empty means "secretd" on $PATH.
	Binary string
	// Args are extra `secretd daemon` flags (--autolock, --docker-host ...).
	Args []string
	// TmpfsMountRoot puts the mount root on a tmpfs of its own, as
	// /run/secretd is on a host whose /run is tmpfs (systemd's default).
	// Otherwise it sits on the temporary directory's filesystem, where
	// each Mount's directory and task record are disk metadata writes.
	TmpfsMountRoot bool
	// Nice runs the daemon at this nice value, as the systemd unit does
	// (Nice=), through nice(1) so that every thread has it.
	Nice int
	// Env is added to the daemon's environment (GODEBUG=gctrace=1 ...).
	Env []string
	// CPUWeight runs the daemon in a cgroup of its own with this CPU
	// weight, as systemd runs a unit with CPUWeight=. Zero leaves it in
	// the test's cgroup.
	CPUWeight int
}

// Daemon is one secretd started for a test.
type Daemon struct {
	// Dir holds everything below; removed at cleanup.
	Dir       string
	DataRoot  string
	MountRoot string
	// Socket is the API's unix socket; Host is it as a SECRETD_HOST value.
	Socket string
	Host   string
	// Driver is this daemon's volume driver name.
	Driver string

	tb     testing.TB
	binary string
	args   []string
	nice   int
	env    []string
	group  *cpuGroup

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	logs   bytes.Buffer
	stdout bytes.Buffer
}

// New prepares a daemon without starting it. Paths stay short because a
// unix socket path is capped at 108 bytes.
func New(tb testing.TB, opts Options) *Daemon {
	tb.Helper()
	dir, err := os.MkdirTemp("", "sd-")
	if err != nil {
		tb.Fatal(err)
	}
	bin := opts.Binary
	if bin == "" {
		bin = "secretd"
	}
	d := &Daemon{
		Dir: dir, DataRoot: filepath.Join(dir, "data"), MountRoot: filepath.Join(dir, "mounts"),
		Socket: filepath.Join(dir, "api.sock"), Driver: DriverName(tb, "secretd-test"),
		tb: tb, binary: bin, args: opts.Args, nice: opts.Nice, env: opts.Env,
	}
	d.Host = "unix://" + d.Socket
	if opts.TmpfsMountRoot {
		err := os.Mkdir(d.MountRoot, 0o700)
		if err == nil {
			err = syscall.Mount("tmpfs", d.MountRoot, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, "size=16m,mode=0700")
		}
		if err != nil {
			os.RemoveAll(dir)
			tb.Fatalf("secretdtest: tmpfs mount root: %v", err)
		}
	}
	if opts.CPUWeight != 0 {
		g, err := newCPUGroup("secretd-test-"+filepath.Base(dir), opts.CPUWeight)
		if err != nil {
			os.RemoveAll(dir)
			tb.Fatalf("secretdtest: a cgroup with CPU weight %d for the daemon: %v", opts.CPUWeight, err)
		}
		d.group = g
	}
	tb.Cleanup(func() {
		d.Stop()
		if d.group != nil {
			if err := d.group.remove(); err != nil {
				tb.Errorf("secretdtest: remove the daemon's cgroup: %v", err)
			}
		}
		// A stopped daemon leaves nothing mounted, not even its spares.
		if leftover := d.allMounts(); len(leftover) > 0 {
			tb.Errorf("secretdtest: mounts left after the test: %v", leftover)
			for _, m := range leftover {
				syscall.Unmount(m, syscall.MNT_DETACH)
			}
		}
		if opts.TmpfsMountRoot {
			if err := syscall.Unmount(d.MountRoot, syscall.MNT_DETACH); err != nil {
				tb.Errorf("secretdtest: unmount tmpfs mount root: %v", err)
			}
		}
		if tb.Failed() {
			tb.Logf("secretd log:\n%s", d.Log())
		}
		os.RemoveAll(dir)
	})
	return d
}

// Start starts a new daemon and waits until both its API and its plugin
// socket answer.
func Start(tb testing.TB, opts Options) *Daemon {
	tb.Helper()
	d := New(tb, opts)
	d.Start()
	return d
}

// AddArgs appends daemon flags used from the next Start on.
func (d *Daemon) AddArgs(args ...string) { d.args = append(d.args, args...) }

// Start (re)starts the daemon on the same data root.
func (d *Daemon) Start() {
	d.tb.Helper()
	args := append([]string{"daemon",
		"--data-root", d.DataRoot, "-H", d.Host, "--mount-root", d.MountRoot,
		"--driver-name", d.Driver, "--log-level", "debug",
	}, d.args...)
	d.mu.Lock()
	cmd := exec.Command(d.binary, args...)
	if d.nice != 0 {
		cmd = exec.Command("nice", append([]string{"-n", strconv.Itoa(d.nice), d.binary}, args...)...)
	}
	if len(d.env) > 0 {
		cmd.Env = append(os.Environ(), d.env...)
	}
	cmd.Stdout = writerFunc(func(p []byte) (int, error) { d.mu.Lock(); defer d.mu.Unlock(); return d.stdout.Write(p) })
	cmd.Stderr = writerFunc(func(p []byte) (int, error) { d.mu.Lock(); defer d.mu.Unlock(); return d.logs.Write(p) })
	if err := cmd.Start(); err != nil {
		d.mu.Unlock()
		d.tb.Fatalf("secretdtest: start %s: %v", d.binary, err)
	}
	done := make(chan struct{})
	d.cmd, d.done = cmd, done
	d.mu.Unlock()
	go func() { cmd.Wait(); close(done) }()
	if d.group != nil {
		// Before it answers: no Mount runs outside the group.
		if err := d.group.add(cmd.Process.Pid); err != nil {
			d.tb.Fatalf("secretdtest: move the daemon into its cgroup: %v", err)
		}
	}

	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			d.tb.Fatalf("secretdtest: secretd exited at start:\n%s", d.Log())
		default:
		}
		if d.ready() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.tb.Fatalf("secretdtest: secretd did not answer within 15s:\n%s", d.Log())
}

func (d *Daemon) ready() bool {
	c, err := client.New(d.Host, nil)
	if err != nil {
		return false
	}
	defer c.Close()
	if c.Ping(context.Background()) != nil {
		return false
	}
	_, err = os.Stat(filepath.Join("/run/docker/plugins", d.Driver+".sock"))
	return err == nil
}

// Stop sends SIGTERM and waits for the daemon to exit.
func (d *Daemon) Stop() { d.signal(syscall.SIGTERM) }

// Kill sends SIGKILL: nothing is cleaned up, as in a crash.
func (d *Daemon) Kill() { d.signal(syscall.SIGKILL) }

func (d *Daemon) signal(sig syscall.Signal) {
	d.mu.Lock()
	cmd, done := d.cmd, d.done
	d.cmd = nil
	d.mu.Unlock()
	stopProcess(cmd, done, sig, 15*time.Second)
}

// Pid is the running daemon's process ID, 0 when stopped.
func (d *Daemon) Pid() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

// Log is everything the daemon logged so far.
func (d *Daemon) Log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.logs.String()
}

// Stdout is what the daemon printed outside its log (a new unlock key).
func (d *Daemon) Stdout() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stdout.String()
}

// Client returns an API client, closed at cleanup.
func (d *Daemon) Client() *client.Client {
	c, err := client.New(d.Host, nil)
	if err != nil {
		d.tb.Fatal(err)
	}
	d.tb.Cleanup(c.Close)
	return c
}

// CreateSecret stores a secret and returns its ID.
func (d *Daemon) CreateSecret(name string, data []byte) string {
	d.tb.Helper()
	id, err := d.Client().SecretCreate(context.Background(), name, nil, data)
	if err != nil {
		d.tb.Fatalf("secretdtest: create secret %s: %v", name, err)
	}
	return id
}

// RunArgs are the `docker run` flags that give a container the declared
// secrets at dst (usually /run/secrets). volume-nocopy spares dockerd a
// Mount that only checks whether image content should be copied into the
// volume: a read-only secrets mount never takes any.
func (d *Daemon) RunArgs(declaration, dst string) []string {
	return []string{
		"--label", "secretd.secrets=" + declaration,
		"--mount", "type=volume,volume-driver=" + d.Driver + ",dst=" + dst + ",volume-nocopy",
	}
}

// VolumeRunArgs are `docker run` flags that carry the declaration in the
// volume's options instead of a label, with the on-update option none, as
// `secretd run` makes them: the Mount then needs nothing from the engine.
func (d *Daemon) VolumeRunArgs(declaration, dst string) []string {
	opt := "volume-opt=secrets=" + declaration
	if strings.ContainsAny(opt, ",\"") {
		// --mount is one CSV record.
		opt = `"` + strings.ReplaceAll(opt, `"`, `""`) + `"`
	}
	return []string{"--mount", "type=volume,volume-driver=" + d.Driver + ",dst=" + dst + ",volume-nocopy," + opt + ",volume-opt=on-update=none"}
}

// Mount and Labels are the same for the Docker Go client's container
// config and host config.
func (d *Daemon) Mount(dst string) mount.Mount {
	return mount.Mount{Type: mount.TypeVolume, Target: dst, VolumeOptions: &mount.VolumeOptions{NoCopy: true, DriverConfig: &mount.Driver{Name: d.Driver}}}
}

// Labels carry the declaration for Mount.
func (d *Daemon) Labels(declaration string) map[string]string {
	return map[string]string{"secretd.secrets": declaration}
}

// Mounts lists the mount points under the daemon's mount root that are
// containers' mounts: it leaves out spares, the empty mounts the daemon
// keeps ready for the next containers (see Spares).
func (d *Daemon) Mounts() []string {
	var out []string
	for _, m := range d.allMounts() {
		if !IsSpare(m) {
			out = append(out, m)
		}
	}
	return out
}

// Spares lists the daemon's free spare mounts.
func (d *Daemon) Spares() []string {
	var out []string
	for _, m := range d.allMounts() {
		if IsSpare(m) {
			out = append(out, m)
		}
	}
	return out
}

// Leftovers lists what the mount root holds besides free spares: mount
// points, records, anything a container's mount left behind.
func (d *Daemon) Leftovers() ([]string, error) {
	entries, err := os.ReadDir(d.MountRoot)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if !IsSpare(filepath.Join(d.MountRoot, e.Name())) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// IsSpare tells a spare mount no container has by its name, and by
// holding nothing or having no task record beside it (a spare filled when
// its container was created, before its Mount): a spare that a Mount took
// counts as its container's.
func IsSpare(mount string) bool {
	if !strings.HasPrefix(filepath.Base(mount), "spare.") {
		return false
	}
	if _, err := os.Lstat(mount + mountroot.RecordSuffix); errors.Is(err, os.ErrNotExist) {
		return true
	}
	entries, err := os.ReadDir(mount)
	return err == nil && len(entries) == 0
}

func (d *Daemon) allMounts() []string {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(mi), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], d.MountRoot+"/") {
			out = append(out, f[4])
		}
	}
	return out
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// String describes the daemon for test logs.
func (d *Daemon) String() string { return fmt.Sprintf("secretd %s (driver %s)", d.Host, d.Driver) }
