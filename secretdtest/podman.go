package secretdtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Podman is Debian's Podman run for one test, everything of it under Dir:
// a containers.conf of its own (the test's volume plugins, no default
// ulimits, cgroupfs, events in a file), storage and run roots of its own
// on vfs, and the Docker-compatible API of `podman system service` on
// Dir/podman.sock, which the test's secretd follows. The host's Podman
// (/var/lib/containers, /run/containers, /run/podman, /etc/cni) is never
// touched.
//
// Podman finds volume plugins only through containers.conf
// ([engine.volume_plugins]), never by discovery; and on these machines runc
// fails to set RLIMIT_NOFILE unless `default_ulimits = []`.
type Podman struct {
	// Dir holds everything of this Podman.
	Dir string
	// Host is its API socket as a DOCKER_HOST (--docker-host) value.
	Host string

	tb   testing.TB
	env  []string
	mu   sync.Mutex
	svc  *exec.Cmd
	done chan struct{}
	logs bytes.Buffer
	// cgroups are the cgroup directories Podman makes its own (see
	// podmanCgroups) that were there before this one started.
	cgroups []string
}

// podmanCgroups matches the cgroup directories Podman makes with the
// cgroupfs manager, under which it puts conmon and each container.
const podmanCgroups = "/sys/fs/cgroup/*/libpod_parent"

// NewPodman prepares a Podman for tb without starting it; cleanup stops
// its API service and removes everything it left. Paths stay short: the
// API socket's path is capped at 108 bytes.
func NewPodman(tb testing.TB) *Podman {
	tb.Helper()
	if _, err := exec.LookPath("podman"); err != nil {
		tb.Fatal("podman not found: install Debian's podman (make deps)")
	}
	dir, err := os.MkdirTemp("", "pm-")
	if err != nil {
		tb.Fatal(err)
	}
	p := &Podman{Dir: dir, Host: "unix://" + filepath.Join(dir, "podman.sock"), tb: tb}
	p.cgroups, _ = filepath.Glob(podmanCgroups)
	p.env = []string{"CONTAINERS_CONF=" + filepath.Join(dir, "containers.conf"), "CONTAINERS_STORAGE_CONF=" + filepath.Join(dir, "storage.conf")}
	tb.Cleanup(func() {
		p.stopService()
		if tb.Failed() {
			tb.Logf("podman system service log:\n%s", p.log())
		}
		if err := RemoveTree(dir, tb.Logf); err != nil {
			tb.Error(err)
		}
		p.removeCgroups()
	})
	return p
}

// removeCgroups removes the cgroup directories Podman made for this run,
// once empty: a directory another Podman still uses (another run's, or the
// host's) is busy and stays, as does one that was there before.
func (p *Podman) removeCgroups() {
	now, _ := filepath.Glob(podmanCgroups)
	for _, d := range now {
		if slices.Contains(p.cgroups, d) {
			continue
		}
		subs, _ := os.ReadDir(d)
		for _, s := range subs {
			if s.IsDir() {
				os.Remove(filepath.Join(d, s.Name()))
			}
		}
		os.Remove(d)
	}
}

// Start writes the configuration with plugins (driver name → plugin socket
// path), imports the test image tag (see BusyboxImage), and serves the
// API. Its cleanup, registered now so that it runs before that of the
// secretd daemons started earlier, removes every container and volume
// while their driver still answers the Unmounts.
func (p *Podman) Start(tag string, plugins map[string]string) {
	p.tb.Helper()
	if err := p.configure(plugins); err != nil {
		p.tb.Fatalf("secretdtest: podman configuration: %v", err)
	}
	p.tb.Cleanup(p.removeAll)
	// An image copy writes Podman's blob-info cache to
	// /var/lib/containers/cache whatever the storage root (Podman 4.3, as
	// root): the import runs in a mount namespace of its own with a tmpfs
	// over /var/lib, which it does not otherwise read.
	importer := append([]string{"unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs -o size=64m,mode=0755 secretd-podman-import /var/lib && exec env "$@"`, "sh"}, append(p.env, "podman")...)
	if err := BusyboxImage(importer, tag, nil); err != nil {
		p.tb.Fatalf("secretdtest: test image for podman: %v", err)
	}
	p.serve()
}

func (p *Podman) configure(plugins map[string]string) error {
	names := make([]string, 0, len(plugins))
	for n := range plugins {
		names = append(names, n)
	}
	sort.Strings(names)
	var vp strings.Builder
	for _, n := range names {
		fmt.Fprintf(&vp, "%s = %q\n", n, plugins[n])
	}
	conf := fmt.Sprintf(`[containers]
default_ulimits = []
netns = "none"

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
events_logger = "file"
events_logfile_path = %q
tmp_dir = %q
image_copy_tmp_dir = %q
volume_path = %q

[engine.runtimes]
runc = [%q]

[engine.volume_plugins]
%s
[network]
network_config_dir = %q
`, filepath.Join(p.Dir, "events.log"), filepath.Join(p.Dir, "tmp"), filepath.Join(p.Dir, "tmp"), filepath.Join(p.Dir, "storage", "volumes"),
		filepath.Join(p.Dir, "runc"), vp.String(), filepath.Join(p.Dir, "net"))
	// runc keeps its state in /run/runc unless told otherwise, and Podman
	// (4.3, as root) does not tell it: every runtime call, from any podman
	// process, goes through this wrapper, which does.
	runc, err := exec.LookPath("runc")
	if err != nil {
		return fmt.Errorf("runc not found: %w", err)
	}
	wrapper := fmt.Sprintf("#!/bin/sh\nexec %s --root %s \"$@\"\n", runc, filepath.Join(p.Dir, "runc-state"))
	if err := os.WriteFile(filepath.Join(p.Dir, "runc"), []byte(wrapper), 0o755); err != nil {
		return err
	}
	storage := fmt.Sprintf("[storage]\ndriver = \"vfs\"\nrunroot = %q\ngraphroot = %q\n", filepath.Join(p.Dir, "run"), filepath.Join(p.Dir, "storage"))
	for _, d := range []string{"tmp", "net"} {
		if err := os.MkdirAll(filepath.Join(p.Dir, d), 0o700); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(p.Dir, "containers.conf"), []byte(conf), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(p.Dir, "storage.conf"), []byte(storage), 0o644)
}

// serve starts `podman system service` and waits until it answers.
func (p *Podman) serve() {
	p.tb.Helper()
	cmd := exec.Command("podman", "system", "service", "--time=0", p.Host)
	cmd.Env = append(os.Environ(), p.env...)
	w := writerFunc(func(b []byte) (int, error) { p.mu.Lock(); defer p.mu.Unlock(); return p.logs.Write(b) })
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		p.tb.Fatalf("secretdtest: start podman system service: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	p.mu.Lock()
	p.svc, p.done = cmd, done
	p.mu.Unlock()
	sock := strings.TrimPrefix(p.Host, "unix://")
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			p.tb.Fatalf("secretdtest: podman system service exited:\n%s", p.log())
		default:
		}
		if resp, err := hc.Get("http://podman/_ping"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.tb.Fatalf("secretdtest: podman system service did not answer within 30s:\n%s", p.log())
}

// StopService stops the API service, as a stop of podman.service would;
// containers keep running. StartService serves it again.
func (p *Podman) StopService() { p.stopService() }

// StartService serves the API again after StopService.
func (p *Podman) StartService() { p.tb.Helper(); p.serve() }

func (p *Podman) stopService() {
	p.mu.Lock()
	cmd, done := p.svc, p.done
	p.svc = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

func (p *Podman) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// Command is a podman command of this Podman.
func (p *Podman) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "podman", args...)
	cmd.Env = append(os.Environ(), p.env...)
	return cmd
}

// Run runs a podman command and returns its output and exit code.
func (p *Podman) Run(args ...string) (stdout, stderr string, code int) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := p.Command(ctx, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code = 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if ctx.Err() != nil {
			fmt.Fprintf(&errb, " (timed out: %v)", ctx.Err())
		}
	}
	return out.String(), errb.String(), code
}

// Must runs a podman command and fails the test unless it succeeds; it
// returns the trimmed output.
func (p *Podman) Must(args ...string) string {
	p.tb.Helper()
	out, errs, code := p.Run(args...)
	if code != 0 {
		p.tb.Fatalf("podman %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return strings.TrimSpace(out)
}

// removeAll removes every container and volume of this Podman.
func (p *Podman) removeAll() {
	if _, errs, code := p.Run("rm", "-af", "-t", "0"); code != 0 {
		p.tb.Errorf("secretdtest: podman rm -af: %s", errs)
	}
	if _, errs, code := p.Run("volume", "rm", "-af"); code != 0 {
		p.tb.Errorf("secretdtest: podman volume rm -af: %s", errs)
	}
}
