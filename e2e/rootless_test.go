package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// rootlessDockerd is the rootless engine's start script as Debian ships it.
const rootlessDockerd = "/usr/share/docker.io/contrib/dockerd-rootless.sh"

// rootlessUser is a throwaway unprivileged user made by the test, with
// subordinate ID ranges, a home, a runtime directory at /run/user/UID, a
// rootless Docker engine and secretd --rootless, all removed at the end.
type rootlessUser struct {
	t        *testing.T
	name     string
	uid, gid int
	subUID   int // first host uid of its subordinate range
	dir      string
	home     string
	runtime  string

	mu      sync.Mutex
	engine  *exec.Cmd
	engDone chan struct{}
	engLog  bytes.Buffer
	secretd *exec.Cmd
	sdDone  chan struct{}
	sdLog   bytes.Buffer
}

// TestRootless runs secretd --rootless for a rootless Docker engine of an
// unprivileged user, as that user, and checks what the user of such an
// engine would: secrets on a read-only tmpfs, in-container uid, gid and
// mode, rotation, wipe at stop, a restart of secretd and of the engine.
func TestRootless(t *testing.T) {
	t.Parallel()
	u := newRootlessUser(t)
	u.startEngine(t)
	u.loadImage()
	u.startSecretd()

	// The CLI finds the user's own daemon without -H: its default when
	// not root.
	u.mustCLI(t, "canary-rootless-9f3c1", "secret", "create", "db", "-")
	u.mustCLI(t, "v1-of-rot", "secret", "create", "rot", "-")
	// The directory of the API socket is the user's alone.
	if fi, err := os.Stat(filepath.Join(u.runtime, "secretd")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("$XDG_RUNTIME_DIR/secretd: %v, %v; want mode 0700", fi.Mode(), err)
	}

	t.Run("read-only tmpfs", func(t *testing.T) {
		out := u.mustDocker(t, "run", "--rm", "--network", "none", "--label", "secretd.secrets=db",
			"--mount", "type=volume,volume-driver=secretd,dst=/run/secrets", image,
			"sh", "-c", `cat /run/secrets/db; echo; grep " /run/secrets " /proc/mounts; touch /run/secrets/new 2>&1; true`)
		if !strings.HasPrefix(out, "canary-rootless-9f3c1\n") {
			t.Fatalf("container read %q, want the secret first", out)
		}
		for _, opt := range []string{"tmpfs /run/secrets tmpfs ro,", "nosuid", "nodev", "noexec", "Read-only file system"} {
			if !strings.Contains(out, opt) {
				t.Errorf("want %q in the container's view:\n%s", opt, out)
			}
		}
		// The mount lives in the engine's namespace only.
		if mi, _ := os.ReadFile("/proc/self/mountinfo"); bytes.Contains(mi, []byte(u.runtime)) {
			t.Errorf("a mount under %s is visible on the host:\n%s", u.runtime, mi)
		}
	})

	t.Run("uid gid mode", func(t *testing.T) {
		decl := "secretd.secrets=source=db,uid=1000,gid=1001,mode=0400"
		id := u.mustDocker(t, "run", "-d", "--network", "none", "--user", "1000:1001", "--label", decl,
			"--mount", "type=volume,volume-driver=secretd,dst=/run/secrets", image,
			"sh", "-c", `trap "exit 0" TERM; sleep 600 & wait`)
		defer u.docker("rm", "-f", "-v", id)
		out := u.mustDocker(t, "exec", id, "sh", "-c", `stat -c "%u %g %a" /run/secrets/db; cat /run/secrets/db`)
		if want := "1000 1001 400\ncanary-rootless-9f3c1"; out != want {
			t.Errorf("as uid 1000 the container sees %q, want %q", out, want)
		}
		if r := u.docker("exec", "--user", "1002:1002", id, "cat", "/run/secrets/db"); r.code == 0 || !strings.Contains(r.stderr, "Permission denied") {
			t.Errorf("uid 1002 reads a mode 0400 file of uid 1000: %s", r)
		}
		// On the host the file belongs to uid 1000's image in the user's
		// subordinate range: namespace uid N > 0 is host uid subUID+N-1.
		pid := u.mustDocker(t, "inspect", "-f", "{{.State.Pid}}", id)
		var st syscall.Stat_t
		if err := syscall.Stat("/proc/"+pid+"/root/run/secrets/db", &st); err != nil {
			t.Fatal(err)
		}
		if want := uint32(u.subUID + 999); st.Uid != want || st.Gid != uint32(u.subUID+1000) {
			t.Errorf("host sees owner %d:%d, want %d:%d", st.Uid, st.Gid, want, u.subUID+1000)
		}
	})

	t.Run("uid outside the mapped range", func(t *testing.T) {
		r := u.docker("run", "--rm", "--network", "none", "--label", "secretd.secrets=source=db,uid=70000",
			"--mount", "type=volume,volume-driver=secretd,dst=/run/secrets", image, "cat", "/run/secrets/db")
		if r.code == 0 || !strings.Contains(r.stderr, "does not map that uid or gid") || strings.Contains(r.stdout, "canary") {
			t.Errorf("uid 70000 is beyond the 65536 IDs the engine maps; want a clear refusal: %s", r)
		}
	})

	t.Run("secretd run, grant and revoke", func(t *testing.T) {
		// secretd run calls the docker CLI, which the user points at the
		// rootless engine.
		r := u.run(t, []string{"DOCKER_HOST=" + u.dockerHost()}, "", binary, "run", "--secret", "source=db,target=pw",
			"--", "--rm", "--network", "none", image, "cat", "/run/secrets/pw")
		if r.code != 0 || r.stdout != "canary-rootless-9f3c1" {
			t.Errorf("secretd run as the user: %s", r)
		}
		id := u.runSleeper(t, "db")
		defer u.docker("rm", "-f", "-v", id)
		u.mustCLI(t, "", "container", "update", id, "--secret-add", "rot")
		if out := u.mustDocker(t, "exec", id, "ls", "/run/secrets"); out != "db\nrot" {
			t.Errorf("after --secret-add rot the container has %q", out)
		}
		u.mustCLI(t, "", "container", "update", id, "--secret-rm", "db")
		if out := u.mustDocker(t, "exec", id, "ls", "/run/secrets"); out != "rot" {
			t.Errorf("after --secret-rm db the container has %q", out)
		}
	})

	t.Run("rotation", func(t *testing.T) {
		id := u.runSleeper(t, "rot")
		defer u.docker("rm", "-f", "-v", id)
		if out := u.mustDocker(t, "exec", id, "cat", "/run/secrets/rot"); out != "v1-of-rot" {
			t.Fatalf("before rotation: %q", out)
		}
		u.mustCLI(t, "v2-of-rot", "secret", "update", "rot", "-")
		if out := u.mustDocker(t, "exec", id, "cat", "/run/secrets/rot"); out != "v2-of-rot" {
			t.Errorf("after secret update the running container reads %q, want v2-of-rot", out)
		}
	})

	t.Run("wipe at stop", func(t *testing.T) {
		id := u.runSleeper(t, "db")
		defer u.docker("rm", "-f", "-v", id)
		dev := u.secretsDevice(t, id)
		if !u.engineHasMount(t, dev) {
			t.Fatalf("no tmpfs of device %s under secretd/mounts in the engine's namespace", dev)
		}
		u.mustDocker(t, "stop", id)
		if u.engineHasMount(t, dev) {
			t.Errorf("the tmpfs %s is still mounted after docker stop", dev)
		}
	})

	t.Run("secretd restart adopts", func(t *testing.T) {
		id := u.runSleeper(t, "rot")
		defer u.docker("rm", "-f", "-v", id)
		dev := u.secretsDevice(t, id)
		u.stopSecretd()
		if !u.engineHasMount(t, dev) {
			t.Fatal("stopping secretd took the running container's secrets away")
		}
		u.startSecretd()
		// Rotation reaches it only if the new secretd adopted its mount.
		u.mustCLI(t, "v3-of-rot", "secret", "update", "rot", "-")
		if out := u.mustDocker(t, "exec", id, "cat", "/run/secrets/rot"); out != "v3-of-rot" {
			t.Errorf("after a secretd restart and an update the container reads %q, want v3-of-rot", out)
		}
		u.mustDocker(t, "stop", id)
		if u.engineHasMount(t, dev) {
			t.Errorf("the adopted tmpfs %s is still mounted after docker stop", dev)
		}
	})

	t.Run("engine restart", func(t *testing.T) {
		id := u.runSleeper(t, "db")
		defer u.docker("rm", "-f", "-v", id)
		// The engine starts this one again at its own start, before its
		// API answers: secretd must already serve in the new namespaces.
		always := u.mustDocker(t, "run", "-d", "--restart", "always", "--network", "none", "--label", "secretd.secrets=db",
			"--mount", "type=volume,volume-driver=secretd,dst=/run/secrets", image,
			"sh", "-c", `trap "exit 0" TERM; sleep 600 & wait`)
		defer u.docker("rm", "-f", "-v", always)
		oldPID := u.enginePID(t)
		oldNS, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", oldPID))
		if err != nil {
			t.Fatal(err)
		}
		u.stopEngine()
		// Nothing holds the old mount namespace any more, secretd
		// included, so no mount of it is left anywhere.
		waitFor(t, 60*time.Second, "every process to leave the old engine's mount namespace", func() bool {
			return len(inNamespace(oldNS)) == 0
		})
		u.startEngine(t)
		newPID := u.enginePID(t)
		waitFor(t, 60*time.Second, "secretd to serve in the new engine's namespaces", func() bool {
			_, err := os.Stat(fmt.Sprintf("/proc/%d/root/run/docker/plugins/secretd.sock", newPID))
			return err == nil
		})
		if out := u.mustDocker(t, "inspect", "-f", "{{.State.Running}}", always); out != "true" {
			t.Errorf("the --restart always container is not running after the engine restart: %s", out)
		} else if out := u.mustDocker(t, "exec", always, "cat", "/run/secrets/db"); out != "canary-rootless-9f3c1" {
			t.Errorf("the --restart always container reads %q after the engine restart", out)
		}
		if out := u.mustDocker(t, "start", id); out != id {
			t.Fatalf("docker start: %q", out)
		}
		if out := u.mustDocker(t, "exec", id, "cat", "/run/secrets/db"); out != "canary-rootless-9f3c1" {
			t.Errorf("after the engine restart the container reads %q", out)
		}
		u.mustCLI(t, "v4-of-rot", "secret", "update", "rot", "-")
		id2 := u.runSleeper(t, "rot")
		defer u.docker("rm", "-f", "-v", id2)
		if out := u.mustDocker(t, "exec", id2, "cat", "/run/secrets/rot"); out != "v4-of-rot" {
			t.Errorf("a new container after the engine restart reads %q", out)
		}
		if !strings.Contains(u.secretdLog(), fmt.Sprintf("engine_pid=%d", newPID)) {
			t.Errorf("secretd's log does not show it joining engine %d:\n%s", newPID, u.secretdLog())
		}
	})

	t.Run("boot", func(t *testing.T) {
		// As at boot: the engine starts first and restarts its containers
		// before it answers; secretd joins it then.
		always := u.mustDocker(t, "run", "-d", "--restart", "always", "--network", "none", "--label", "secretd.secrets=db",
			"--mount", "type=volume,volume-driver=secretd,dst=/run/secrets", image,
			"sh", "-c", `trap "exit 0" TERM; sleep 600 & wait`)
		defer u.docker("rm", "-f", "-v", always)
		oldPID := u.enginePID(t)
		u.stopSecretd()
		u.stopEngine()
		u.launchEngine(t)
		waitFor(t, 60*time.Second, "the new dockerd to write its pid", func() bool {
			b, err := os.ReadFile(filepath.Join(u.runtime, "docker.pid"))
			if err != nil {
				return false
			}
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
			return pid != oldPID && strings.TrimSpace(string(comm)) == "dockerd"
		})
		u.startSecretd()
		u.waitEngineAnswers(t)
		if out := u.mustDocker(t, "inspect", "-f", "{{.State.Running}}", always); out != "true" {
			t.Fatalf("the --restart always container is not running after the boot: %s", out)
		}
		if out := u.mustDocker(t, "exec", always, "cat", "/run/secrets/db"); out != "canary-rootless-9f3c1" {
			t.Errorf("the --restart always container reads %q after the boot", out)
		}
	})

	t.Run("engine crash", func(t *testing.T) {
		id := u.runSleeper(t, "db")
		defer u.docker("rm", "-f", "-v", id)
		ctr := u.mustDocker(t, "inspect", "-f", "{{.State.Pid}}", id)
		oldPID := u.enginePID(t)
		oldNS, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", oldPID))
		if err != nil {
			t.Fatal(err)
		}
		// dockerd dies without unmounting anything; the container and its
		// shim live on in the old namespaces.
		syscall.Kill(oldPID, syscall.SIGKILL)
		u.waitEngineExit(t)
		waitFor(t, 30*time.Second, "the daemon proper to leave the dead engine's namespaces", func() bool {
			return len(u.processes(fmt.Sprintf("--rootless-engine-pid=%d", oldPID))) == 0
		})
		held := inNamespace(oldNS)
		if len(held) == 0 {
			t.Fatal("nothing holds the old mount namespace: the test needs the container's shim there")
		}
		holder := strings.Fields(held[0])[0]
		mi, err := os.ReadFile("/proc/" + holder + "/mountinfo")
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(mi), "\n") {
			if strings.Contains(l, "/secretd/mounts/") && strings.Contains(l, " - tmpfs ") {
				t.Errorf("a secretd tmpfs is left in the dead engine's namespace: %s", l)
			}
		}
		if b, err := os.ReadFile("/proc/" + ctr + "/root/run/secrets/db"); err == nil && bytes.Contains(b, []byte("canary-rootless-9f3c1")) {
			t.Errorf("the orphaned container still reads the secret after the engine died")
		}
		// The orphans of the dead engine go before the next one starts.
		for _, p := range append(inNamespace(oldNS), ctr) {
			pid, _ := strconv.Atoi(strings.Fields(p)[0])
			syscall.Kill(pid, syscall.SIGKILL)
		}
		waitFor(t, 30*time.Second, "the dead engine's orphans to exit", func() bool {
			return len(inNamespace(oldNS)) == 0
		})
		// dockerd takes a containerd.pid left by a crash whose number was
		// reused for a live containerd and waits on it forever.
		os.Remove(filepath.Join(u.runtime, "docker", "containerd", "containerd.pid"))
		u.startEngine(t)
		newPID := u.enginePID(t)
		waitFor(t, 60*time.Second, "secretd to serve in the new engine's namespaces", func() bool {
			_, err := os.Stat(fmt.Sprintf("/proc/%d/root/run/docker/plugins/secretd.sock", newPID))
			return err == nil
		})
		id2 := u.runSleeper(t, "db")
		defer u.docker("rm", "-f", "-v", id2)
		if out := u.mustDocker(t, "exec", id2, "cat", "/run/secrets/db"); out != "canary-rootless-9f3c1" {
			t.Errorf("a new container after the engine crash reads %q", out)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		// Each refusal leaves no file behind: the data and runtime
		// directories are fresh and must stay empty.
		empty := filepath.Join(u.home, "bad-runtime")
		data := filepath.Join(u.home, "bad-data")
		for _, d := range []string{empty, data} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(d, u.uid, u.gid); err != nil {
				t.Fatal(err)
			}
		}
		env := []string{"XDG_RUNTIME_DIR=" + empty, "XDG_DATA_HOME=" + data}

		r := runCmd(t, env, "", binary, "daemon", "--rootless")
		if r.code == 0 || !strings.Contains(r.stderr, "not as root") {
			t.Errorf("--rootless as root: %s", r)
		}
		r = u.run(t, env, "", binary, "daemon", "--rootless")
		if r.code == 0 || !strings.Contains(r.stderr, "docker.pid does not exist: start it first") {
			t.Errorf("no engine: %s", r)
		}
		gone := exec.Command("true")
		if err := gone.Run(); err != nil {
			t.Fatal(err)
		}
		pidFile := filepath.Join(empty, "docker.pid")
		if err := os.WriteFile(pidFile, []byte(strconv.Itoa(gone.Process.Pid)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		r = u.run(t, env, "", binary, "daemon", "--rootless")
		if r.code == 0 || !strings.Contains(r.stderr, "stale "+pidFile) {
			t.Errorf("stale docker.pid: %s", r)
		}
		os.Remove(pidFile)
		// A runtime directory others may write to could hold anyone's
		// sockets: the daemon and the CLI refuse it.
		open := filepath.Join(u.home, "open-runtime")
		if err := os.Mkdir(open, 0o777); err != nil {
			t.Fatal(err)
		}
		os.Chmod(open, 0o777)
		os.Chown(open, u.uid, u.gid)
		openEnv := []string{"XDG_RUNTIME_DIR=" + open, "XDG_DATA_HOME=" + data}
		for _, args := range [][]string{{"daemon", "--rootless"}, {"secret", "ls"}} {
			if r := u.run(t, openEnv, "", binary, args...); r.code == 0 || !strings.Contains(r.stderr, "has mode 0777: others may write to it") {
				t.Errorf("secretd %s with a world-writable XDG_RUNTIME_DIR: %s", strings.Join(args, " "), r)
			}
		}
		for _, d := range []string{empty, data, open} {
			if ents, _ := os.ReadDir(d); len(ents) > 0 {
				t.Errorf("a refused start left %s in %s", ents[0].Name(), d)
			}
		}
	})

	if strings.Contains(u.secretdLog(), "canary-rootless-9f3c1") {
		t.Error("the secret's value is in secretd's log")
	}
}

// userNamespaces says why unprivileged user namespaces are unavailable,
// or "" when they are.
func userNamespaces(u *rootlessUser) string {
	for file, bad := range map[string]string{
		"/proc/sys/user/max_user_namespaces":                     "0",
		"/proc/sys/kernel/unprivileged_userns_clone":             "0",
		"/proc/sys/kernel/apparmor_restrict_unprivileged_userns": "1",
	} {
		if b, err := os.ReadFile(file); err == nil && strings.TrimSpace(string(b)) == bad {
			return fmt.Sprintf("%s is %s", file, bad)
		}
	}
	if r := u.run(u.t, nil, "", "unshare", "--user", "--map-root-user", "true"); r.code != 0 {
		return "an unprivileged user cannot create a user namespace: " + strings.TrimSpace(r.stderr)
	}
	return ""
}

func newRootlessUser(t *testing.T) *rootlessUser {
	t.Helper()
	for _, bin := range []string{"rootlesskit", "newuidmap", "newgidmap", "nsenter", "useradd", rootlessDockerd} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not found: run 'make deps' (rootlesskit, uidmap; docker.io ships %s)", bin, rootlessDockerd)
		}
	}
	dir, err := os.MkdirTemp("", "sdrl-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	u := &rootlessUser{t: t, dir: dir, home: filepath.Join(dir, "home"), name: fmt.Sprintf("sdrl%06d", rand.IntN(1000000))}
	t.Cleanup(u.cleanup)
	if out, err := exec.Command("useradd", "--no-create-home", "--home-dir", u.home, "--shell", "/bin/sh", "--user-group", u.name).CombinedOutput(); err != nil {
		u.name = ""
		t.Fatalf("useradd: %v: %s", err, out)
	}
	ids, err := exec.Command("id", "-u", u.name).Output()
	if err != nil {
		t.Fatal(err)
	}
	u.uid, _ = strconv.Atoi(strings.TrimSpace(string(ids)))
	ids, _ = exec.Command("id", "-g", u.name).Output()
	u.gid, _ = strconv.Atoi(strings.TrimSpace(string(ids)))
	u.subUID = u.subordinates("/etc/subuid")
	if sub := u.subordinates("/etc/subgid"); sub != u.subUID {
		t.Fatalf("subuid range starts at %d, subgid range at %d: the test expects them equal", u.subUID, sub)
	}
	if err := os.Mkdir(u.home, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chown(u.home, u.uid, u.gid)
	if why := userNamespaces(u); why != "" {
		t.Skipf("user namespaces are unavailable here, so rootless Docker cannot run: %s", why)
	}
	u.runtime = fmt.Sprintf("/run/user/%d", u.uid)
	os.RemoveAll(u.runtime) // a left-over of a user that had this uid before
	if err := os.MkdirAll(u.runtime, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chmod(u.runtime, 0o700)
	os.Chown(u.runtime, u.uid, u.gid)
	return u
}

// subordinates returns the start of the user's range in file (subuid or
// subgid), giving it one past every other range when useradd did not.
func (u *rootlessUser) subordinates(file string) int {
	u.t.Helper()
	next := 100000
	b, _ := os.ReadFile(file)
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) != 3 {
			continue
		}
		start, _ := strconv.Atoi(f[1])
		n, _ := strconv.Atoi(f[2])
		if f[0] == u.name {
			if n < 65536 {
				u.t.Fatalf("%s gives %s only %d ids: the test needs 65536", file, u.name, n)
			}
			return start
		}
		next = max(next, start+n)
	}
	flag := "--add-subuids"
	if strings.HasSuffix(file, "subgid") {
		flag = "--add-subgids"
	}
	if out, err := exec.Command("usermod", flag, fmt.Sprintf("%d-%d", next, next+65535), u.name).CombinedOutput(); err != nil {
		u.t.Fatalf("usermod %s: %v: %s", flag, err, out)
	}
	return next
}

// env is the user's login environment.
func (u *rootlessUser) env(extra ...string) []string {
	return append([]string{
		"HOME=" + u.home, "USER=" + u.name, "LOGNAME=" + u.name,
		"XDG_RUNTIME_DIR=" + u.runtime,
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	}, extra...)
}

func (u *rootlessUser) command(env []string, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = u.home
	cmd.Env = append(u.env(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.gid), Groups: []uint32{}},
		Setsid:     true,
	}
	return cmd
}

// run runs a command as the user.
func (u *rootlessUser) run(t testing.TB, env []string, stdin, name string, args ...string) result {
	t.Helper()
	cmd := u.command(env, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %s as %s: %v", name, u.name, err)
	}
	return r
}

// mustCLI runs the secretd CLI as the user, with no -H.
func (u *rootlessUser) mustCLI(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	r := u.run(t, nil, stdin, binary, args...)
	if r.code != 0 {
		t.Fatalf("secretd %s (as %s): %s", strings.Join(args, " "), u.name, r)
	}
	return strings.TrimSpace(r.stdout)
}

func (u *rootlessUser) dockerHost() string {
	return "unix://" + filepath.Join(u.runtime, "docker.sock")
}

// docker runs the docker CLI against the user's rootless engine.
func (u *rootlessUser) docker(args ...string) result {
	return runCmd(u.t, nil, "", "docker", append([]string{"-H", u.dockerHost()}, args...)...)
}

func (u *rootlessUser) mustDocker(t *testing.T, args ...string) string {
	t.Helper()
	r := u.docker(args...)
	if r.code != 0 {
		t.Fatalf("docker %s (rootless): %s", strings.Join(args, " "), r)
	}
	return strings.TrimSpace(r.stdout)
}

// runSleeper starts a container that holds secret and stops at once on
// SIGTERM, so stops and engine restarts do not wait out a timeout.
func (u *rootlessUser) runSleeper(t *testing.T, secret string) string {
	t.Helper()
	return u.mustDocker(t, "run", "-d", "--network", "none", "--label", "secretd.secrets="+secret,
		"--mount", "type=volume,volume-driver=secretd,dst=/run/secrets", image,
		"sh", "-c", `trap "exit 0" TERM; sleep 600 & wait`)
}

// secretsDevice is the device number (major:minor) of the container's
// /run/secrets mount, which names that tmpfs in every mount namespace.
func (u *rootlessUser) secretsDevice(t *testing.T, id string) string {
	t.Helper()
	pid := u.mustDocker(t, "inspect", "-f", "{{.State.Pid}}", id)
	mi, err := os.ReadFile("/proc/" + pid + "/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == "/run/secrets" && strings.Contains(l, " - tmpfs ") {
			return f[2]
		}
	}
	t.Fatalf("no tmpfs at /run/secrets in container %s:\n%s", id, mi)
	return ""
}

// engineHasMount reports whether the tmpfs of device dev is mounted in
// the engine's mount namespace.
func (u *rootlessUser) engineHasMount(t testing.TB, dev string) bool {
	t.Helper()
	mi, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", u.enginePID(t)))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[2] == dev && strings.Contains(l, "/secretd/mounts/") {
			return true
		}
	}
	return false
}

func (u *rootlessUser) enginePID(t testing.TB) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(u.runtime, "docker.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// inNamespace lists the processes whose mount namespace is ns.
func inNamespace(ns string) []string {
	var in []string
	procs, _ := filepath.Glob("/proc/[0-9]*/ns/mnt")
	for _, p := range procs {
		if l, err := os.Readlink(p); err == nil && l == ns {
			comm, _ := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(p)), "comm"))
			in = append(in, filepath.Base(filepath.Dir(filepath.Dir(p)))+" "+strings.TrimSpace(string(comm)))
		}
	}
	return in
}

// startEngine runs dockerd-rootless.sh as the user, with the two settings
// machines without /dev/net/tun need, and waits until the engine answers.
func (u *rootlessUser) startEngine(t *testing.T) {
	t.Helper()
	u.launchEngine(t)
	u.waitEngineAnswers(t)
}

// launchEngine starts the engine without waiting for it.
func (u *rootlessUser) launchEngine(t *testing.T) {
	t.Helper()
	cmd := u.command([]string{"DOCKERD_ROOTLESS_ROOTLESSKIT_NET=host", "DOCKERD_ROOTLESS_ROOTLESSKIT_PORT_DRIVER=none"},
		rootlessDockerd, "--bridge=none", "--iptables=false", "--ip6tables=false")
	u.mu.Lock()
	u.engLog.Reset()
	cmd.Stdout = &lockedWriter{mu: &u.mu, w: &u.engLog}
	cmd.Stderr = cmd.Stdout
	u.mu.Unlock()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	u.mu.Lock()
	u.engine, u.engDone = cmd, done
	u.mu.Unlock()
}

// waitEngineAnswers waits until the engine serves its API.
func (u *rootlessUser) waitEngineAnswers(t *testing.T) {
	t.Helper()
	u.mu.Lock()
	done := u.engDone
	u.mu.Unlock()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			t.Fatalf("rootless dockerd exited at start:\n%s", u.engineLog())
		default:
		}
		if u.docker("version", "--format", "{{.Server.Version}}").code == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("rootless dockerd did not answer within 90s:\n%s", u.engineLog())
}

// stopEngine stops the engine as `systemctl --user stop docker` does: a
// SIGTERM to RootlessKit, which dockerd-rootless.sh execs.
func (u *rootlessUser) stopEngine() {
	u.mu.Lock()
	cmd, done := u.engine, u.engDone
	u.engine = nil
	u.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// waitEngineExit waits for RootlessKit to exit on its own, as it does when
// dockerd dies.
func (u *rootlessUser) waitEngineExit(t *testing.T) {
	t.Helper()
	u.mu.Lock()
	cmd, done := u.engine, u.engDone
	u.engine = nil
	u.mu.Unlock()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		t.Fatal("RootlessKit did not exit within 60s of dockerd's death")
	}
}

func (u *rootlessUser) engineLog() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.engLog.String()
}

func (u *rootlessUser) secretdLog() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.sdLog.String()
}

// loadImage copies the test image from the shared engine into the user's.
func (u *rootlessUser) loadImage() {
	u.t.Helper()
	save := exec.Command("docker", "save", image)
	load := exec.Command("docker", "-H", u.dockerHost(), "load", "-q")
	pipe, err := save.StdoutPipe()
	if err != nil {
		u.t.Fatal(err)
	}
	load.Stdin = pipe
	var out bytes.Buffer
	load.Stdout, load.Stderr = &out, &out
	if err := save.Start(); err != nil {
		u.t.Fatal(err)
	}
	if err := load.Run(); err != nil {
		u.t.Fatalf("load %s into the rootless engine: %v\n%s", image, err, out.String())
	}
	if err := save.Wait(); err != nil {
		u.t.Fatalf("docker save %s: %v", image, err)
	}
}

// startSecretd runs secretd daemon --rootless as the user with every
// default and waits until its API answers the user's CLI.
func (u *rootlessUser) startSecretd() {
	u.t.Helper()
	cmd := u.command(nil, binary, "daemon", "--rootless")
	cmd.Stdout = &lockedWriter{mu: &u.mu, w: &u.sdLog}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		u.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	u.mu.Lock()
	u.secretd, u.sdDone = cmd, done
	u.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			u.t.Fatalf("secretd --rootless exited at start:\n%s", u.secretdLog())
		default:
		}
		if u.run(u.t, nil, "", binary, "secret", "ls", "-q").code == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	u.t.Fatalf("secretd --rootless did not answer within 60s:\n%s", u.secretdLog())
}

// stopSecretd sends SIGTERM to the supervisor and waits for it, and with
// it the daemon proper, to exit.
func (u *rootlessUser) stopSecretd() {
	u.mu.Lock()
	cmd, done := u.secretd, u.sdDone
	u.secretd = nil
	u.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		u.t.Errorf("secretd --rootless did not stop within 30s of SIGTERM:\n%s", u.secretdLog())
	}
	// The daemon proper is the supervisor's child; it must be gone too.
	waitFor(u.t, 30*time.Second, "the daemon proper to exit", func() bool {
		return len(u.processes("--rootless-engine-pid")) == 0
	})
}

// processes lists the pids of the user's processes whose command line
// holds match ("" for all).
func (u *rootlessUser) processes(match string) []int {
	var pids []int
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != u.uid {
			continue
		}
		cl, _ := os.ReadFile(filepath.Join(p, "cmdline"))
		if match != "" && !bytes.Contains(cl, []byte(match)) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(p))
		pids = append(pids, pid)
	}
	return pids
}

// cleanup removes everything the test made, whatever state it stopped in:
// containers, secretd, the engine, every process of the user, its files
// and the user itself.
func (u *rootlessUser) cleanup() {
	if u.t.Failed() {
		u.t.Logf("secretd --rootless log:\n%s", u.secretdLog())
		u.t.Logf("rootless dockerd log (tail):\n%s", tail(u.engineLog(), 120))
	}
	if u.engine != nil {
		if out, _ := exec.Command("docker", "-H", u.dockerHost(), "ps", "-aq").Output(); len(out) > 0 {
			exec.Command("docker", append([]string{"-H", u.dockerHost(), "rm", "-f", "-v"}, strings.Fields(string(out))...)...).Run()
		}
	}
	u.stopSecretd()
	u.stopEngine()
	if u.uid > 0 {
		// Whatever is left (shims, containers) runs as the user or in
		// its subordinate range; the first covers all the test starts.
		for i := 0; i < 50; i++ {
			pids := u.processes("")
			if len(pids) == 0 {
				break
			}
			for _, pid := range pids {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if u.runtime != "" {
		if err := os.RemoveAll(u.runtime); err != nil {
			u.t.Errorf("remove %s: %v", u.runtime, err)
		}
	}
	if err := os.RemoveAll(u.dir); err != nil {
		u.t.Errorf("remove %s: %v", u.dir, err)
	}
	if u.name != "" {
		if out, err := exec.Command("userdel", u.name).CombinedOutput(); err != nil {
			u.t.Errorf("userdel %s: %v: %s", u.name, err, out)
		}
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// lockedWriter lets a process's output be read while it still writes.
type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
