package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/secretd/secretd/api"
)

// sleeper keeps a container running until docker stop. A shell running as
// PID 1 ignores SIGTERM unless it traps it, and then docker stop would wait
// its full 10s timeout before killing.
const sleeper = "trap 'exit 0' TERM; sleep 600 & wait"

// startTestDaemon is startDaemon for tests that run containers on the
// shared engine: their containers and volumes are removed while this
// daemon still answers the Unmounts, even if a test stopped it.
func startTestDaemon(t *testing.T, extra ...string) *daemon {
	t.Helper()
	d := startDaemon(t, extra...)
	t.Cleanup(func() {
		if d.pid() == 0 {
			d.start()
		}
		d.cleanupContainers()
	})
	return d
}

// ctrName returns a container or volume name unique to this daemon.
func (d *daemon) ctrName(suffix string) string { return d.driver + "-" + suffix }

// execSh runs a shell command in a running container and fails unless it succeeds.
func execSh(t *testing.T, ctr, cmd string) string {
	t.Helper()
	return mustDocker(t, "exec", ctr, "sh", "-c", cmd)
}

// tasks returns secretd's task table.
func (d *daemon) tasks(t testing.TB) []api.Task {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tasks, err := d.client().Tasks(ctx)
	if err != nil {
		t.Fatalf("tasks: %v", err)
	}
	return tasks
}

// status returns secretd's status.
func (d *daemon) status(t testing.TB) api.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := d.client().Status(ctx)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	return st
}

// taskMount returns the host mount secretd holds for a container. The
// container's name reaches the task table from its start event, a moment
// after `docker run -d` returns.
func (d *daemon) taskMount(t testing.TB, ctr string) string {
	t.Helper()
	var found []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		found = nil
		for _, tk := range d.tasks(t) {
			if tk.ContainerName == ctr {
				found = append(found, tk.Mount)
			}
		}
		if len(found) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(found) != 1 {
		t.Fatalf("secretd has %d mounts for container %s, want 1: %v", len(found), ctr, found)
	}
	return found[0]
}

func (d *daemon) hasMount(dir string) bool { return slices.Contains(d.mounts(), dir) }

// waitGone waits until dir is neither mounted nor present on the host.
func (d *daemon) waitGone(t testing.TB, dir, what string) {
	t.Helper()
	waitFor(t, 20*time.Second, what+" at "+dir+" to be unmounted and removed", func() bool {
		_, err := os.Lstat(dir)
		return !d.hasMount(dir) && os.IsNotExist(err)
	})
}

// mountDev returns the device (major:minor) of the mount at dir in the
// mount table of pid ("self" for the test), "" when nothing is mounted
// there. Comparing devices ties a container's /run/secrets to a host mount
// without trusting what secretd or dockerd report.
func mountDev(t *testing.T, pid, dir string) string {
	t.Helper()
	mi, err := os.ReadFile("/proc/" + pid + "/mountinfo")
	if err != nil {
		t.Fatalf("read mountinfo of %s: %v", pid, err)
	}
	dev := ""
	for _, line := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			dev = f[2] // the last one listed is the one on top
		}
	}
	return dev
}

// secretsDev returns the device of /run/secrets inside a running container.
func secretsDev(t *testing.T, dockerArgs []string, ctr string) string {
	t.Helper()
	r := runCmd(t, engineOf(t).env(), "", "docker", append(dockerArgs, "inspect", "-f", "{{.State.Pid}}", ctr)...)
	pid := strings.TrimSpace(r.stdout)
	if r.code != 0 || pid == "" || pid == "0" {
		t.Fatalf("pid of container %s: %s", ctr, r)
	}
	return mountDev(t, pid, "/run/secrets")
}

// visible returns the names ls prints, which leaves out the ".."-prefixed
// entries of the atomic-update layout.
func visible(ls string) []string {
	names := strings.Fields(ls)
	slices.Sort(names)
	return names
}

// noswapSupported probes the host kernel the way a user would: the option
// exists on Linux 6.4 and later.
func noswapSupported(t *testing.T) bool {
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=4k,noswap"); err != nil {
		return false
	}
	unix.Unmount(dir, 0)
	return true
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n/2)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// TestWalkthrough follows Docker's secrets walkthrough (redis example),
// with secretd standing in for Swarm.
func TestWalkthrough(t *testing.T) {
	t.Parallel()
	onEngines(t, testWalkthrough)
}

// testWalkthrough is TestWalkthrough on one engine of the matrix.
func testWalkthrough(t *testing.T) {
	d := startTestDaemon(t)
	const value = "This is a secret"
	d.mustCLI(value, "secret", "create", "my_secret_data", "-")

	name := d.ctrName("redis")
	mustDocker(t, d.runArgs("my_secret_data", []string{"-d", "--name", name}, sleeper)...)

	if got := execSh(t, name, "cat /run/secrets/my_secret_data"); got != value {
		t.Fatalf("cat /run/secrets/my_secret_data = %q, want %q", got, value)
	}
	var line []string
	for _, l := range strings.Split(execSh(t, name, "ls -lL /run/secrets"), "\n") {
		if f := strings.Fields(l); len(f) > 3 && f[len(f)-1] == "my_secret_data" {
			line = f
		}
	}
	if line == nil {
		t.Fatalf("ls -lL /run/secrets does not list my_secret_data")
	}
	if line[0] != "-r--r--r--" || line[2] != "root" || line[3] != "root" {
		t.Errorf("ls -lL /run/secrets: %q, want -r--r--r-- root root", strings.Join(line, " "))
	}
	var opts []string
	for _, l := range strings.Split(execSh(t, name, "cat /proc/mounts"), "\n") {
		if f := strings.Fields(l); len(f) > 3 && f[1] == "/run/secrets" {
			if f[2] != "tmpfs" {
				t.Errorf("/run/secrets is %s in the container, want tmpfs: %s", f[2], l)
			}
			opts = strings.Split(f[3], ",")
		}
	}
	want := []string{"ro", "nosuid", "nodev", "noexec"}
	if noswapSupported(t) {
		want = append(want, "noswap")
	}
	for _, o := range want {
		if !slices.Contains(opts, o) {
			t.Errorf("/run/secrets mount options %v lack %q", opts, o)
		}
	}
	// A writable mount would let the container alter what others trust.
	if r := docker(t, "exec", name, "sh", "-c", "echo x > /run/secrets/new"); r.code == 0 {
		t.Errorf("writing into /run/secrets succeeded")
	}

	// Docker 20.10 reports no Source for a plugin volume that had no
	// mountpoint when the container was created, so the host path comes
	// from the volume itself, which dockerd asks the driver for.
	vol := mustDocker(t, "inspect", "-f", `{{range .Mounts}}{{if eq .Driver "`+d.driver+`"}}{{.Name}}{{end}}{{end}}`, name)
	if vol == "" {
		t.Fatalf("container %s has no volume of driver %s", name, d.driver)
	}
	host := mustDocker(t, "volume", "inspect", "-f", "{{.Mountpoint}}", vol)
	if src := mustDocker(t, "inspect", "-f", "{{range .Mounts}}{{.Source}}{{end}}", name); src != "" && src != host {
		t.Errorf("docker inspect Source %q differs from the volume's mountpoint %q", src, host)
	}
	if !strings.HasPrefix(host, d.mountRoot+"/") || !d.hasMount(host) {
		t.Fatalf("volume mountpoint %q is not a tmpfs under %s (mounts: %v)", host, d.mountRoot, d.mounts())
	}

	// The secret must not travel with an image made from the container.
	tag := "secretd-e2e-commit:" + strings.TrimPrefix(d.driver, "secretd-e2e-")
	mustDocker(t, "commit", name, tag)
	eng := engineOf(t)
	t.Cleanup(func() { eng.command("rmi", "-f", tag).Run() })
	out := mustDocker(t, "run", "--rm", "--network", "none", "--label", d.label(), tag, "sh", "-c",
		"if test -e /run/secrets/my_secret_data; then echo PRESENT; else echo ABSENT; fi; ls -A /run/secrets")
	if out != "ABSENT" {
		t.Errorf("container of the committed image sees in /run/secrets: %q, want nothing", out)
	}
	save := eng.command("save", tag)
	img, err := save.Output()
	if err != nil {
		t.Fatalf("docker save %s: %v", tag, err)
	}
	if strings.Contains(string(img), value) {
		t.Errorf("docker save of the committed image contains the secret")
	}

	inUse := "secret 'my_secret_data' is in use by the following container: " + name
	if r := d.cli("", "secret", "rm", "my_secret_data"); r.code == 0 || !strings.Contains(r.stderr, inUse) {
		t.Errorf("secretd secret rm while running: want failure with %q, got %s", inUse, r)
	}
	if r := d.dockerSecret("", "rm", "my_secret_data"); r.code == 0 || !strings.Contains(r.stderr, inUse) {
		t.Errorf("docker secret rm while running: want failure with %q, got %s", inUse, r)
	}

	ps := d.mustCLI("", "ps", "--format", "{{.Name}} {{.Secret}} {{.Target}} {{.Mount}}")
	if wantRow := name + " my_secret_data my_secret_data " + host; !slices.Contains(strings.Split(ps, "\n"), wantRow) {
		t.Errorf("secretd ps:\n%s\nwant a row %q", ps, wantRow)
	}

	mustDocker(t, "stop", name)
	d.waitGone(t, host, "the stopped container's secrets")
	if r := d.cli("", "secret", "rm", "my_secret_data"); r.code == 0 || !strings.Contains(r.stderr, inUse) {
		t.Errorf("secretd secret rm while the stopped container exists: want failure with %q, got %s", inUse, r)
	}
	if ps := d.mustCLI("", "ps", "--format", "{{.Name}}"); strings.Contains(ps, name) {
		t.Errorf("secretd ps lists the stopped container:\n%s", ps)
	}

	mustDocker(t, "rm", "-v", name)
	d.mustCLI("", "secret", "rm", "my_secret_data")
	if ls := d.mustCLI("", "secret", "ls", "--format", "{{.Name}}"); ls != "" {
		t.Errorf("secret ls after rm: %q", ls)
	}
}

// TestTargetsAndOwnership checks every field of a declaration, in the
// label form and in the named-volume form.
func TestTargetsAndOwnership(t *testing.T) {
	t.Parallel()
	d := startTestDaemon(t)
	for name, value := range map[string]string{"db_password": "pw-1", "api_key": "key-2", "tls": "tls-3"} {
		d.mustCLI(value, "secret", "create", name, "-")
	}

	t.Run("label", func(t *testing.T) {
		name := d.ctrName("label")
		decl := "db_password;source=api_key,target=api.key,mode=0400;" +
			"source=tls,target=certs/tls.key,uid=101,gid=101,mode=0440;" +
			"source=db_password,target=conf/db,uid=65534,gid=65534,mode=0600"
		mustDocker(t, d.runArgs(decl, []string{"-d", "--name", name}, sleeper)...)
		defer docker(t, "rm", "-f", "-v", name)

		if got, want := visible(execSh(t, name, "ls /run/secrets")), []string{"api.key", "certs", "conf", "db_password"}; !slices.Equal(got, want) {
			t.Errorf("ls /run/secrets = %v, want %v", got, want)
		}
		for _, c := range []struct{ path, stat, data string }{
			{"db_password", "444 0 0", "pw-1"},
			{"api.key", "400 0 0", "key-2"},
			{"certs/tls.key", "440 101 101", "tls-3"},
			{"conf/db", "600 65534 65534", "pw-1"},
		} {
			p := "/run/secrets/" + c.path
			if got := execSh(t, name, "stat -L -c '%a %u %g' "+p); got != c.stat {
				t.Errorf("stat %s = %q, want %q", p, got, c.stat)
			}
			if got := execSh(t, name, "cat "+p); got != c.data {
				t.Errorf("cat %s = %q, want %q", p, got, c.data)
			}
		}
		// Ownership only matters if it decides who can read.
		for _, c := range []struct {
			user, path string
			ok         bool
		}{
			{"65534:65534", "conf/db", true},
			{"65534:65534", "db_password", true},
			{"65534:65534", "api.key", false},
			{"65534:65534", "certs/tls.key", false},
			{"101:101", "certs/tls.key", true},
			{"102:102", "certs/tls.key", false},
		} {
			r := docker(t, "exec", "-u", c.user, name, "cat", "/run/secrets/"+c.path)
			if (r.code == 0) != c.ok {
				t.Errorf("user %s reading %s: exit %d, want success %v (%s)", c.user, c.path, r.code, c.ok, r.stderr)
			}
		}
		mount := d.taskMount(t, name)
		mustDocker(t, "stop", name)
		d.waitGone(t, mount, "the label container's secrets")
	})

	t.Run("named volume shared by two containers", func(t *testing.T) {
		vol := d.ctrName("web-secrets")
		mustDocker(t, "volume", "create", "-d", d.driver, "-o",
			"secrets=db_password;source=tls,target=certs/tls.key,uid=101,gid=101,mode=0440", vol)
		var names []string
		for _, n := range []string{"web1", "web2"} {
			name := d.ctrName(n)
			names = append(names, name)
			mustDocker(t, "run", "-d", "--name", name, "--network", "none", "--label", d.label(),
				"-v", vol+":/run/secrets", image, "sh", "-c", sleeper)
			defer docker(t, "rm", "-f", name)
		}
		mounts := map[string]string{}
		devs := map[string]bool{}
		for _, name := range names {
			if got := execSh(t, name, "cat /run/secrets/db_password"); got != "pw-1" {
				t.Errorf("%s: cat db_password = %q", name, got)
			}
			if got := execSh(t, name, "stat -L -c '%a %u %g' /run/secrets/certs/tls.key; cat /run/secrets/certs/tls.key"); got != "440 101 101\ntls-3" {
				t.Errorf("%s: certs/tls.key: %q, want mode 440 owned by 101:101 holding tls-3", name, got)
			}
			if got := visible(execSh(t, name, "ls /run/secrets")); !slices.Equal(got, []string{"certs", "db_password"}) {
				t.Errorf("%s: ls /run/secrets = %v", name, got)
			}
			mounts[name] = d.taskMount(t, name)
			dev := secretsDev(t, nil, name)
			if dev == "" || dev != mountDev(t, "self", mounts[name]) {
				t.Errorf("%s: /run/secrets is device %q, its host mount %s is %q", name, dev, mounts[name], mountDev(t, "self", mounts[name]))
			}
			devs[dev] = true
		}
		if mounts[names[0]] == mounts[names[1]] || len(devs) != 2 {
			t.Fatalf("the two containers share one mount: %v, devices %v", mounts, devs)
		}
		mustDocker(t, "stop", names[0])
		d.waitGone(t, mounts[names[0]], "the first container's secrets")
		if got := execSh(t, names[1], "cat /run/secrets/db_password"); got != "pw-1" {
			t.Errorf("after the first container stopped, the second reads %q", got)
		}
		if !d.hasMount(mounts[names[1]]) {
			t.Errorf("the second container's mount %s went away with the first", mounts[names[1]])
		}
		mustDocker(t, "stop", names[1])
		d.waitGone(t, mounts[names[1]], "the second container's secrets")
	})

	t.Run("volume create errors", func(t *testing.T) {
		for _, c := range []struct{ opt, want string }{
			{"bogus=1", `unknown option "bogus"`},
			{"secrets=source=a,mode=999", `entry 1 "source=a,mode=999": mode "999" is not an octal number`},
		} {
			vol := d.ctrName("bad")
			r := docker(t, "volume", "create", "-d", d.driver, "-o", c.opt, vol)
			if r.code == 0 || !strings.Contains(r.stderr, c.want) {
				t.Errorf("volume create -o %s: want failure with %q, got %s", c.opt, c.want, r)
			}
			// Filtered by the live driver: an unfiltered lookup would wait
			// on every dead plugin the engine still remembers.
			if ls := mustDocker(t, "volume", "ls", "-q", "--filter", "driver="+d.driver); slices.Contains(strings.Fields(ls), vol) {
				t.Errorf("volume create -o %s failed but left volume %s", c.opt, vol)
			}
		}
	})
}

// TestRestartPolicy: every restart under a restart policy gets the secret
// again, and the final exit leaves nothing mounted.
func TestRestartPolicy(t *testing.T) {
	t.Parallel()
	d := startTestDaemon(t)
	d.mustCLI("restart-me", "secret", "create", "s", "-")
	name := d.ctrName("crashloop")
	mustDocker(t, d.runArgs("s", []string{"-d", "--name", name, "--restart", "on-failure:3"},
		"cat /run/secrets/s; echo; exit 1")...)
	var state string
	waitFor(t, 60*time.Second, "the container to exit for good after 3 restarts", func() bool {
		state = mustDocker(t, "inspect", "-f", "{{.State.Status}} {{.RestartCount}}", name)
		return state == "exited 3"
	})
	logs := docker(t, "logs", name)
	if n := strings.Count(logs.stdout, "restart-me\n"); n != 4 || strings.TrimSpace(strings.ReplaceAll(logs.stdout, "restart-me\n", "")) != "" {
		t.Errorf("docker logs: the secret was read %d times, want 4 (one per start); logs:\n%s\nstderr:\n%s", n, logs.stdout, logs.stderr)
	}
	waitFor(t, 10*time.Second, "no mount left after the last exit", func() bool { return len(d.mounts()) == 0 })
	if tasks := d.tasks(t); len(tasks) != 0 {
		t.Errorf("secretd still has tasks after the container exited: %+v", tasks)
	}
}

// TestIsolation: a container sees its own secrets and nothing of another's.
func TestIsolation(t *testing.T) {
	t.Parallel()
	d := startTestDaemon(t)
	d.mustCLI("alpha-value", "secret", "create", "alpha", "-")
	d.mustCLI("beta-value", "secret", "create", "beta", "-")
	a, b := d.ctrName("a"), d.ctrName("b")
	mustDocker(t, d.runArgs("alpha", []string{"-d", "--name", a}, sleeper)...)
	mustDocker(t, d.runArgs("beta", []string{"-d", "--name", b}, sleeper)...)
	mounts := map[string]string{a: d.taskMount(t, a), b: d.taskMount(t, b)}
	if mounts[a] == mounts[b] {
		t.Fatalf("both containers got mount %s", mounts[a])
	}
	for _, c := range []struct{ self, other, own, foreign string }{{a, b, "alpha", "beta"}, {b, a, "beta", "alpha"}} {
		if got := visible(execSh(t, c.self, "ls /run/secrets")); !slices.Equal(got, []string{c.own}) {
			t.Errorf("%s: ls /run/secrets = %v, want only %s", c.self, got, c.own)
		}
		if got := execSh(t, c.self, "cat /run/secrets/"+c.own); got != c.own+"-value" {
			t.Errorf("%s: cat %s = %q", c.self, c.own, got)
		}
		if r := docker(t, "exec", c.self, "ls", mounts[c.other]); r.code == 0 {
			t.Errorf("%s can list the other container's mount %s: %s", c.self, mounts[c.other], r.stdout)
		}
		if r := docker(t, "exec", c.self, "cat", "/run/secrets/"+c.foreign); r.code == 0 {
			t.Errorf("%s can read %s: %q", c.self, c.foreign, r.stdout)
		}
		// Exactly one tmpfs of secrets: the container's own.
		if n := execSh(t, c.self, "grep -c ' /run/secrets ' /proc/mounts || true"); n != "1" {
			t.Errorf("%s: /run/secrets is mounted %s times, want once", c.self, n)
		}
		if got, want := secretsDev(t, nil, c.self), mountDev(t, "self", mounts[c.self]); got == "" || got != want {
			t.Errorf("%s: /run/secrets is device %q, its own host mount is %q", c.self, got, want)
		}
	}
	mustDocker(t, "stop", a, b)
	d.waitGone(t, mounts[a], "a's secrets")
	d.waitGone(t, mounts[b], "b's secrets")
}

// TestDaemonCrash: a SIGKILLed secretd loses the Unmounts sent while it
// was down; at restart it must wipe what stopped containers left and keep
// what running containers use.
func TestDaemonCrash(t *testing.T) {
	t.Parallel()
	onEngines(t, testDaemonCrash)
}

// testDaemonCrash is TestDaemonCrash on one engine of the matrix.
func testDaemonCrash(t *testing.T) {
	d := startTestDaemon(t)
	d.mustCLI("survivor-value", "secret", "create", "keep", "-")
	d.mustCLI("stopped-value", "secret", "create", "gone", "-")
	live, stopped := d.ctrName("live"), d.ctrName("stopped")
	// The live container holds its secret open across the crash (fd 3 of
	// its shell, pid 1), as a server that read its key at start does.
	mustDocker(t, d.runArgs("keep", []string{"-d", "--name", live}, "exec 3</run/secrets/keep; "+sleeper)...)
	mustDocker(t, d.runArgs("gone", []string{"-d", "--name", stopped}, sleeper)...)
	liveMount, stoppedMount := d.taskMount(t, live), d.taskMount(t, stopped)
	inode := execSh(t, live, "stat -c %i /run/secrets/keep")
	if !d.hasMount(liveMount) || !d.hasMount(stoppedMount) {
		t.Fatalf("mounts %s %s not found among %v", liveMount, stoppedMount, d.mounts())
	}

	d.kill()
	if r := docker(t, "stop", stopped); r.code != 0 {
		t.Fatalf("docker stop with the driver down: %s", r)
	}
	if !d.hasMount(stoppedMount) {
		// Nothing to prove at restart if the mount went away without secretd.
		t.Logf("the stopped container's mount went away while secretd was down")
	}
	d.start()

	d.waitGone(t, stoppedMount, "the mount of the container stopped while secretd was down")
	if got := docker(t, "exec", live, "cat", "/run/secrets/keep"); got.code != 0 || got.stdout != "survivor-value" {
		t.Errorf("after the restart the running container reads %q (exit %d, %s), want %q: "+
			"the restart's resync wiped the mount of a running container instead of adopting it",
			got.stdout, got.code, strings.TrimSpace(got.stderr), "survivor-value")
	}
	if !d.hasMount(liveMount) {
		t.Errorf("the running container's mount %s is gone after the restart", liveMount)
	}
	// Adopting a mount that holds the current versions leaves it as it is:
	// rewriting it would retire, and zero, the file the container holds.
	if got := execSh(t, live, "cat /proc/1/fd/3"); got != "survivor-value" {
		t.Errorf("the file the container held open across the restart reads %q, want %q", got, "survivor-value")
	}
	if got := execSh(t, live, "stat -c %i /run/secrets/keep"); got != inode {
		t.Errorf("the adopted mount was rewritten: /run/secrets/keep is inode %s, was %s", got, inode)
	}
	ps := d.mustCLI("", "ps", "--format", "{{.Name}} {{.Secret}} {{.Mount}}")
	if row := live + " keep " + liveMount; !slices.Contains(strings.Split(ps, "\n"), row) {
		t.Errorf("secretd ps after the restart:\n%s\nwant the adopted row %q", ps, row)
	}
	if strings.Contains(ps, stopped) {
		t.Errorf("secretd ps lists the stopped container:\n%s", ps)
	}

	mustDocker(t, "stop", live)
	d.waitGone(t, liveMount, "the survivor's secrets")
	mustDocker(t, "rm", "-v", live, stopped)
	if m := d.mounts(); len(m) != 0 {
		t.Errorf("mounts left: %v", m)
	}
}

// TestBadDeclarations: every declaration error stops the container before
// it starts, with a message that says what is wrong, and leaves nothing.
func TestBadDeclarations(t *testing.T) {
	t.Parallel()
	d := startTestDaemon(t)
	d.mustCLI("va", "secret", "create", "a", "-")
	d.mustCLI("vb", "secret", "create", "b", "-")
	for _, c := range []struct {
		name, decl string
		extra      []string
		want       string
	}{
		{"unknown secret", "nope", nil, "secret 'nope' not found"},
		{"duplicate target", "a;source=b,target=a", nil, `duplicate target "a"`},
		{"target escapes", "source=a,target=../x", nil, `target "../x" must not contain ".." components`},
		{"absolute target outside every volume", "source=a,target=/abs", nil, `entry for a has the target /abs, which no secretd volume of the container holds`},
		{"mode not octal", "source=a,mode=0999", nil, `mode "0999" is not an octal number`},
		{"mode above 0777", "source=a,mode=1777", nil, `mode "1777" is above 0777`},
		{"uid not a number", "source=a,uid=abc", nil, `uid "abc" is not a number`},
		{"unknown key", "source=a,foo=1", nil, `unknown option "foo"`},
		{"empty entry", "a;;b", nil, `entry 2 "": empty entry`},
		{"bad on-update", "a", []string{"--label", "secretd.on-update=bogus"}, `secretd.on-update="bogus"`},
		{"no declaration", "", nil, "declares no secrets"},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := d.runArgs(c.decl, c.extra, "cat /run/secrets/*")
			if c.decl == "" {
				args = []string{"run", "--network", "none", "--label", d.label(),
					"--mount", "type=volume,volume-driver=" + d.driver + ",dst=/run/secrets", image, "true"}
			}
			r := docker(t, args...)
			if r.code == 0 || !strings.Contains(r.stderr, "VolumeDriver.Mount: ") || !strings.Contains(r.stderr, c.want) {
				t.Errorf("docker run with %q: want failure with VolumeDriver.Mount: ...%s, got %s", c.decl, c.want, r)
			}
			if r.code != 125 {
				t.Errorf("docker run exit code %d, want 125 (docker's own failure, the command never ran)", r.code)
			}
			if m := d.mounts(); len(m) != 0 {
				t.Errorf("mounted after a refused start: %v", m)
			}
			if ents, err := d.Leftovers(); err != nil || len(ents) != 0 {
				t.Errorf("mount root after a refused start: %v %v", ents, err)
			}
			if running := mustDocker(t, "ps", "-q", "--filter", "label="+d.label()); running != "" {
				t.Errorf("containers running after a refused start: %s", running)
			}
		})
	}
}

// TestCanaryAfterStop: once a container is gone, its secret's plaintext is
// nowhere on the host that secretd or dockerd left readable.
func TestCanaryAfterStop(t *testing.T) {
	t.Parallel()
	d := startTestDaemon(t)
	canary := randomHex(t, 32)
	d.mustCLI(canary, "secret", "create", "canary", "-")
	name := d.ctrName("canary")
	mustDocker(t, d.runArgs("canary", []string{"-d", "--name", name}, sleeper)...)
	// The container proves it read the canary without printing it, so no
	// log of the test or the engine holds it.
	if got := execSh(t, name, "cat /run/secrets/canary | md5sum | cut -d' ' -f1"); got != md5hex(t, canary) {
		t.Fatalf("the container read something else than the canary (md5 %s)", got)
	}
	if strings.Contains(mustDocker(t, "inspect", name), canary) {
		t.Errorf("docker inspect of the container shows the canary")
	}
	mount := d.taskMount(t, name)
	mustDocker(t, "stop", name)
	d.waitGone(t, mount, "the canary's mount")
	mustDocker(t, "rm", "-v", name)

	if ents, err := d.Leftovers(); err != nil || len(ents) != 0 {
		t.Errorf("mount root is not empty after the container is gone: %v %v", ents, err)
	}
	filepath.WalkDir(d.dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			t.Errorf("walk %s: %v", p, err)
			return nil
		}
		if !e.Type().IsRegular() {
			return nil
		}
		if b, err := os.ReadFile(p); err != nil {
			t.Errorf("read %s: %v", p, err)
		} else if strings.Contains(string(b), canary) {
			t.Errorf("%s contains the canary", p)
		}
		return nil
	})
	if strings.Contains(d.log(), canary) {
		t.Errorf("secretd's log contains the canary")
	}
	if strings.Contains(d.stdout(), canary) {
		t.Errorf("secretd's stdout contains the canary")
	}
	pid := fmt.Sprint(d.pid())
	for _, f := range []string{"cmdline", "environ"} {
		if b, err := os.ReadFile("/proc/" + pid + "/" + f); err != nil {
			t.Errorf("read /proc/%s/%s: %v", pid, f, err)
		} else if strings.Contains(string(b), canary) {
			t.Errorf("secretd's /proc/%s/%s contains the canary", pid, f)
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	if len(procs) == 0 {
		t.Fatalf("no /proc/*/cmdline to scan")
	}
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), canary) {
			t.Errorf("%s contains the canary: %q", p, b)
		}
	}
}

func md5hex(t *testing.T, s string) string {
	r := runCmd(t, nil, s, "md5sum")
	return strings.Fields(r.stdout)[0]
}

// TestLockedDaemonFailsClosed: an autolocked secretd after a restart
// refuses every Mount until it is unlocked.
func TestLockedDaemonFailsClosed(t *testing.T) {
	t.Parallel()
	d := startTestDaemon(t, "--autolock")
	key := d.mustCLI("", "unlock-key", "-q")
	d.mustCLI("locked-value", "secret", "create", "s", "-")
	d.stop()
	d.start()
	if !d.status(t).Locked {
		t.Fatalf("an autolocked daemon is not locked after a restart")
	}
	args := d.runArgs("s", []string{"--rm"}, "cat /run/secrets/s")
	r := docker(t, args...)
	if r.code == 0 || !strings.Contains(r.stderr, "VolumeDriver.Mount: secretd is locked: run 'secretd unlock'") {
		t.Errorf("docker run while locked: want failure with secretd is locked: run 'secretd unlock', got %s", r)
	}
	if strings.Contains(r.stdout, "locked-value") {
		t.Errorf("the container read the secret while secretd was locked")
	}
	if m := d.mounts(); len(m) != 0 {
		t.Errorf("mounted while locked: %v", m)
	}
	if running := mustDocker(t, "ps", "-q", "--filter", "label="+d.label()); running != "" {
		t.Errorf("containers running after a refused start: %s", running)
	}
	d.mustCLI(key+"\n", "unlock")
	if out := mustDocker(t, args...); out != "locked-value" {
		t.Errorf("after unlock the container reads %q, want locked-value", out)
	}
	waitFor(t, 10*time.Second, "no mount left", func() bool { return len(d.mounts()) == 0 })
}

// TestDaemonDownFailsClosed: with secretd stopped, a container that
// declares secrets does not start without them, whether or not dockerd
// has used the driver before.
func TestDaemonDownFailsClosed(t *testing.T) {
	t.Parallel()
	fresh, used := startTestDaemon(t), startTestDaemon(t)
	for _, d := range []*daemon{fresh, used} {
		d.mustCLI("v", "secret", "create", "s", "-")
	}
	if out := mustDocker(t, used.runArgs("s", []string{"--rm"}, "cat /run/secrets/s")...); out != "v" {
		t.Fatalf("with secretd up the container reads %q", out)
	}
	fresh.stop()
	used.stop()

	// dockerd retries a plugin it cannot reach for 15 to 30s, so both
	// starts are tried at once. --pull never: dockerd's "plugin not found"
	// is a not-found error, which the CLI would take for a missing image.
	var wg sync.WaitGroup
	results := map[*daemon]*result{fresh: new(result), used: new(result)}
	for d, r := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			*r = runCmd(t, nil, "", "docker", d.runArgs("s", []string{"--pull", "never"}, "cat /run/secrets/s; echo RAN")...)
		}()
	}
	wg.Wait()
	for d, what := range map[*daemon]string{fresh: "driver never used", used: "driver used before"} {
		r := *results[d]
		if r.code == 0 || strings.Contains(r.stdout, "RAN") {
			t.Errorf("%s: docker run with secretd down: want failure, got %s", what, r)
		}
		if !strings.Contains(r.stderr, d.driver) {
			t.Errorf("%s: the docker run error does not name the driver %s: %s", what, d.driver, r.stderr)
		}
		if running := mustDocker(t, "ps", "-q", "--filter", "label="+d.label()); running != "" {
			t.Errorf("%s: containers running with secretd down: %s", what, running)
		}
	}
}

// TestWritesBetweenCreateAndStart: secretd fills a volume's tmpfs when
// the volume is created with its declaration, before any Mount, and hands
// it over at the Mount only if nothing changed: a version written in
// between reaches the container. (A volume declared by label is filled at
// its container's create event; the controller's tests cover it, as an
// engine may Mount it already during `docker create`.)
func TestWritesBetweenCreateAndStart(t *testing.T) {
	t.Parallel()
	d := startTestDaemon(t)
	d.mustCLI("s-v1", "secret", "create", "s", "-")
	d.mustCLI("k-v1", "secret", "create", "k", "-")
	vol := d.ctrName("early")
	mustDocker(t, "volume", "create", "-d", d.driver, "-o", "secrets=s;k", "-o", "on-update=none", vol)
	waitFor(t, 20*time.Second, "the volume to be staged", func() bool {
		return strings.Contains(d.log(), `msg="volume staged" volume=`+vol+" ")
	})
	d.mustCLI("s-v2", "secret", "update", "s", "-")
	name := d.ctrName("early")
	mustDocker(t, d.runArgs("", []string{"-d", "--pull", "never", "--name", name, "-v", vol + ":/run/secrets"}, sleeper)...)
	if got := execSh(t, name, "cat /run/secrets/s; echo; cat /run/secrets/k"); got != "s-v2\nk-v1" {
		t.Errorf("the container read %q, want the version written after the volume was filled, s-v2, and k-v1", got)
	}
	first := regexp.MustCompile(`msg="secrets mounted" volume=` + vol + ` .* staged=(\w+)`).FindStringSubmatch(d.log())
	if first == nil || first[1] != "true" {
		t.Errorf("the volume's first Mount: %q, want it to take the staged fill", first)
	}
}
