package e2e

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secretd/secretd/tmpfs"
)

// mountEntry is one line of /proc/PID/mountinfo.
type mountEntry struct {
	point, fstype string
	opts, super   []string
}

// findMount returns the last (topmost) entry of a mountinfo text mounted
// at point.
func findMount(mountinfo, point string) (mountEntry, bool) {
	var e mountEntry
	found := false
	for _, line := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(line)
		sep := slices.Index(f, "-")
		if len(f) < 6 || sep < 6 || len(f) < sep+4 || f[4] != point {
			continue
		}
		e = mountEntry{point: f[4], opts: strings.Split(f[5], ","), fstype: f[sep+1], super: strings.Split(f[sep+3], ",")}
		found = true
	}
	return e, found
}

// checkSecretsMount asserts the flags a secrets mount must have, per mount
// and on its superblock.
func checkSecretsMount(t *testing.T, where string, e mountEntry) {
	t.Helper()
	if e.fstype != "tmpfs" {
		t.Errorf("%s: fstype %s, want tmpfs", where, e.fstype)
	}
	for _, o := range []string{"ro", "nosuid", "nodev", "noexec"} {
		if !slices.Contains(e.opts, o) {
			t.Errorf("%s: mount options %v lack %s", where, e.opts, o)
		}
	}
	super := []string{"ro"}
	if tmpfs.NoswapSupported() {
		super = append(super, "noswap")
	}
	for _, o := range super {
		if !slices.Contains(e.super, o) {
			t.Errorf("%s: super options %v lack %s", where, e.super, o)
		}
	}
}

func ctrPid(t *testing.T, ctr string) string {
	t.Helper()
	pid := mustDocker(t, "inspect", "-f", "{{.State.Pid}}", ctr)
	if pid == "" || pid == "0" {
		t.Fatalf("container %s has no pid", ctr)
	}
	return pid
}

// hostMount returns the host directory secretd mounted for a container.
func hostMount(t *testing.T, d *daemon, ctr string) string {
	t.Helper()
	return d.taskMount(t, ctr)
}

func md5Of(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// TestSecurity checks, on one daemon serving real containers, what the
// secrets mount looks like from inside, that no secret value leaks to any
// place on the host where it could outlive the container, that containers
// cannot reach each other's secrets, and the modes of the daemon's files.
func TestSecurity(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	c1, c2 := canary(t), canary(t)
	d.mustCLI(c1, "secret", "create", "canary", "-")
	d.mustCLI("#!/bin/sh\necho EXECUTED\n", "secret", "create", "script", "-")
	app := d.driver + "-sec-app"
	mustDocker(t, d.runArgs("canary;source=script,target=run.sh,mode=0555", []string{"-d", "--name", app}, biSleeper)...)
	sum := func() string {
		return mustDocker(t, "exec", app, "sh", "-c", "md5sum /run/secrets/canary | cut -d' ' -f1")
	}
	if got := sum(); got != md5Of(c1) {
		t.Fatalf("the container does not read the canary (md5 %s)", got)
	}
	host := hostMount(t, d, app)

	checkFlags := func(t *testing.T, when string) {
		mi := mustDocker(t, "exec", app, "cat", "/proc/self/mountinfo")
		e, ok := findMount(mi, "/run/secrets")
		if !ok {
			t.Fatalf("%s: no /run/secrets in the container's mountinfo:\n%s", when, mi)
		}
		checkSecretsMount(t, when+", inside the container", e)
		hmi, _ := os.ReadFile("/proc/self/mountinfo")
		he, ok := findMount(string(hmi), host)
		if !ok {
			t.Fatalf("%s: %s is not mounted on the host", when, host)
		}
		checkSecretsMount(t, when+", on the host", he)
	}

	t.Run("mount flags", func(t *testing.T) {
		checkFlags(t, "after start")
		// An executable file with a shebang: noexec must refuse it.
		if got := mustDocker(t, "exec", app, "stat", "-L", "-c", "%a", "/run/secrets/run.sh"); got != "555" {
			t.Fatalf("run.sh has mode %s, want 555", got)
		}
		r := docker(t, "exec", app, "/run/secrets/run.sh")
		if r.code == 0 || strings.Contains(r.stdout, "EXECUTED") || !strings.Contains(strings.ToLower(r.stdout+r.stderr), "permission denied") {
			t.Errorf("executing a file from /run/secrets: want permission denied, got %s", r)
		}
		for _, cmd := range []string{"touch /run/secrets/new", "mkdir /run/secrets/d", "chmod 0777 /run/secrets/canary", "rm /run/secrets/canary"} {
			if r := docker(t, "exec", app, "sh", "-c", cmd); r.code == 0 {
				t.Errorf("%s in the container succeeded", cmd)
			}
		}
	})

	t.Run("canary everywhere", func(t *testing.T) {
		d.mustCLI(c2, "secret", "update", "canary", "-")
		waitFor(t, 10*time.Second, "the container to see the second canary", func() bool { return sum() == md5Of(c2) })
		checkFlags(t, "after a rotation")

		var places []string
		search := func(where string, b []byte) {
			places = append(places, where)
			for i, c := range []string{c1, c2} {
				if strings.Contains(string(b), c) {
					t.Errorf("canary %d found in %s", i+1, where)
				}
			}
		}
		// The daemon's directory, but for the live mounts, which hold the
		// plaintext by design.
		filepath.WalkDir(d.dir, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				t.Errorf("walk %s: %v", p, err)
				return nil
			}
			if p == d.mountRoot {
				return fs.SkipDir
			}
			if e.Type().IsRegular() {
				b, err := os.ReadFile(p)
				if err != nil {
					t.Errorf("read %s: %v", p, err)
				}
				search(p, b)
			}
			return nil
		})
		if !slices.Contains(places, filepath.Join(d.dataRoot, "secrets.db")) {
			t.Fatalf("the walk missed the store: %v", places)
		}
		search("secretd's log", []byte(d.log()))
		search("secretd's stdout", []byte(d.stdout()))
		search("docker inspect "+app, []byte(mustDocker(t, "inspect", app)))
		vols := strings.Fields(mustDocker(t, "inspect", "-f", `{{range .Mounts}}{{if eq .Driver "`+d.driver+`"}}{{.Name}} {{end}}{{end}}`, app))
		if len(vols) != 1 {
			t.Fatalf("container %s has volumes %v of driver %s, want 1", app, vols, d.driver)
		}
		search("docker volume inspect "+vols[0], []byte(mustDocker(t, "volume", "inspect", vols[0])))
		// What the engine keeps of the container and its volume on disk.
		id := mustDocker(t, "inspect", "-f", "{{.Id}}", app)
		root := mustDocker(t, "info", "-f", "{{.DockerRootDir}}")
		for _, dir := range []string{filepath.Join(root, "containers", id), filepath.Join(root, "volumes", "metadata.db")} {
			filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
				if err == nil && e.Type().IsRegular() {
					if b, err := os.ReadFile(p); err == nil {
						search(p, b)
					}
				}
				return nil
			})
		}
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		if len(procs) < 10 {
			t.Fatalf("only %d /proc/*/cmdline to scan", len(procs))
		}
		for _, p := range procs {
			if b, err := os.ReadFile(p); err == nil {
				search(p, b)
			}
		}
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", d.pid()))
		if err != nil {
			t.Fatal(err)
		}
		search("secretd's environ", env)

		// Swap: a tmpfs page can reach the disk only through swap.
		swaps, err := os.ReadFile("/proc/swaps")
		if err != nil {
			t.Fatal(err)
		}
		active := len(strings.Split(strings.TrimSpace(string(swaps)), "\n")) > 1
		hmi, _ := os.ReadFile("/proc/self/mountinfo")
		e, _ := findMount(string(hmi), host)
		if noswap := slices.Contains(e.super, "noswap"); active && !noswap {
			t.Errorf("swap is active and the secrets mount %s is not noswap (super options %v)", host, e.super)
		} else {
			t.Logf("swap active: %v; mount noswap: %v (kernel supports it: %v)", active, noswap, tmpfs.NoswapSupported())
		}
		t.Logf("searched %d places for both canaries", len(places))
	})

	t.Run("isolation", func(t *testing.T) {
		d.mustCLI("a-value", "secret", "create", "a", "-")
		d.mustCLI("b-value", "secret", "create", "b", "-")
		a, b := d.driver+"-sec-a", d.driver+"-sec-b"
		mustDocker(t, d.runArgs("a", []string{"-d", "--name", a}, biSleeper)...)
		// B's command line carries a marker A must not see in its /proc.
		mustDocker(t, d.runArgs("b", []string{"-d", "--name", b}, "trap 'exit 0' TERM; sleep 601 & wait")...)
		bMount, bPid := hostMount(t, d, b), ctrPid(t, b)

		if out := mustDocker(t, "exec", a, "sh", "-c", "test -e "+bMount+" && echo PRESENT || echo ABSENT"); out != "ABSENT" {
			t.Errorf("B's host mount %s exists inside A: %s", bMount, out)
		}
		pids := strings.Fields(mustDocker(t, "exec", a, "sh", "-c", "cd /proc && ls -d [0-9]*"))
		if slices.Contains(pids, bPid) || len(pids) > 10 {
			t.Errorf("A's /proc lists %v (B's host pid is %s): A sees processes not its own", pids, bPid)
		}
		if cmds := mustDocker(t, "exec", a, "sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '"); strings.Contains(cmds, "sleep 601") {
			t.Errorf("A sees B's processes: %q", cmds)
		}
		if out := mustDocker(t, "exec", a, "sh", "-c", "test -e /proc/"+bPid+"/root && echo REACHABLE || echo UNREACHABLE"); out != "UNREACHABLE" {
			t.Errorf("/proc/%s/root (B) is reachable from A", bPid)
		}

		// A weakened container: the host's PID namespace, as nobody. It
		// sees B's processes but must not enter B's root.
		peek := func(extra []string, pid, file string) result {
			args := append([]string{"run", "--rm", "--network", "none", "--pid", "host", "--label", d.label()}, extra...)
			return docker(t, append(args, image, "sh", "-c",
				"tr '\\0' ' ' < /proc/"+pid+"/cmdline; echo; cat /proc/"+pid+"/root/run/secrets/"+file)...)
		}
		r := peek([]string{"--user", "65534"}, bPid, "b")
		if !strings.Contains(r.stdout, "sleep 601") {
			t.Fatalf("the --pid host container does not see B's process %s, so the check below proves nothing: %s", bPid, r)
		}
		if strings.Contains(r.stdout, "b-value") || r.code == 0 || !strings.Contains(r.stderr, "Permission denied") {
			t.Errorf("FINDING: a --pid host container running as uid 65534 reads B's secret through /proc/%s/root: %s", bPid, r)
		}

		// Not assertions: what a weakened container can do beyond that,
		// reported so the limits of the isolation are on record.
		if r := peek(nil, bPid, "b"); strings.Contains(r.stdout, "b-value") {
			t.Logf("observation: a --pid host container running as root (default capabilities) reads B's secret through /proc/%s/root/run/secrets/b", bPid)
		} else {
			t.Logf("observation: a --pid host container running as root cannot read B's secret: %s", strings.TrimSpace(r.stderr))
		}
		d.mustCLI("n-value", "secret", "create", "n", "-")
		nb := d.driver + "-sec-nobody"
		mustDocker(t, d.runArgs("n", []string{"-d", "--name", nb, "--user", "65534"}, "trap 'exit 0' TERM; sleep 602 & wait")...)
		if r := peek([]string{"--user", "65534"}, ctrPid(t, nb), "n"); strings.Contains(r.stdout, "n-value") {
			t.Logf("observation: a --pid host container running as uid 65534 reads the secrets of another container running as uid 65534 " +
				"(same uid, no capabilities on either side: ptrace access to /proc/PID/root is granted)")
		} else {
			t.Logf("observation: a --pid host container as uid 65534 cannot read the secrets of a uid 65534 container: %s", strings.TrimSpace(r.stderr))
		}
		mustDocker(t, "rm", "-f", a, b, nb)
	})

	t.Run("file modes", func(t *testing.T) {
		for _, c := range []struct {
			path string
			mode os.FileMode
		}{
			{d.dataRoot, 0o700 | os.ModeDir},
			{filepath.Join(d.dataRoot, "key"), 0o600},
			{filepath.Join(d.dataRoot, "secrets.db"), 0o600},
			{filepath.Join(d.dataRoot, "volumes"), 0o700 | os.ModeDir},
			{d.mountRoot, 0o700 | os.ModeDir},
		} {
			st, err := os.Stat(c.path)
			if err != nil {
				t.Errorf("stat %s: %v", c.path, err)
				continue
			}
			if st.Mode() != c.mode {
				t.Errorf("%s has mode %v, want %v", c.path, st.Mode(), c.mode)
			}
			if s := st.Sys().(*syscall.Stat_t); s.Uid != 0 {
				t.Errorf("%s is owned by uid %d, want root", c.path, s.Uid)
			}
		}
		// Files the daemon creates later keep the same rule.
		filepath.WalkDir(d.dataRoot, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if info, err := e.Info(); err == nil && info.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s has mode %v: readable or writable by group or others", p, info.Mode())
			}
			return nil
		})
	})
}

// TestSecuritySocketGroup checks the API socket is 0660 root:GROUP with
// --group: a member connects, a user outside the group is refused.
func TestSecuritySocketGroup(t *testing.T) {
	t.Parallel()
	group := "sde2e" + canary(t)[len("canary-"):][:8]
	if out, err := exec.Command("groupadd", group).CombinedOutput(); err != nil {
		t.Fatalf("groupadd %s: %v: %s", group, err, out)
	}
	t.Cleanup(func() { exec.Command("groupdel", group).Run() })
	g, err := user.LookupGroup(group)
	if err != nil {
		t.Fatal(err)
	}
	gid, _ := strconv.Atoi(g.Gid)

	d := newDaemon(t, "--group", group)
	// The socket sits in the test's private directory: open it to
	// traversal so the socket's own mode is what decides.
	if err := os.Chmod(d.dir, 0o711); err != nil {
		t.Fatal(err)
	}
	d.start()

	st, err := os.Stat(d.sock)
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	if st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o660 || sys.Uid != 0 || int(sys.Gid) != gid {
		t.Errorf("API socket: mode %v uid %d gid %d, want socket 0660 uid 0 gid %d (%s)", st.Mode(), sys.Uid, sys.Gid, gid, group)
	}
	plugin := filepath.Join("/run/docker/plugins", d.driver+".sock")
	if pst, err := os.Stat(plugin); err != nil {
		t.Errorf("plugin socket: %v", err)
	} else if psys := pst.Sys().(*syscall.Stat_t); pst.Mode().Perm()&0o007 != 0 || psys.Uid != 0 || psys.Gid != 0 {
		t.Errorf("plugin socket %s: mode %v uid %d gid %d: others may ask it to mount secrets", plugin, pst.Mode(), psys.Uid, psys.Gid)
	}

	as := func(gid uint32, groups []uint32) result {
		return runCmdAttr(t, &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: gid, Groups: groups}},
			binary, "-H", "unix://"+d.sock, "secret", "ls", "--format", "{{.Name}}")
	}
	// The refusal says what gives access, not whether the daemon runs.
	if r := as(65534, nil); r.code == 0 || !strings.Contains(r.stderr, "permission denied on secretd's socket "+d.sock+
		": run the command as root, or have the daemon started with --group GROUP and join that group") {
		t.Errorf("uid 65534 outside group %s: want permission denied and what to do, got %s", group, r)
	}
	if r := as(65534, []uint32{uint32(gid)}); r.code != 0 {
		t.Errorf("uid 65534 with supplementary group %s: %s", group, r)
	}
	if r := as(uint32(gid), nil); r.code != 0 {
		t.Errorf("uid 65534 with primary group %s: %s", group, r)
	}
}

// TestSecurityUnsafeRoots: a mistyped --mount-root that holds someone
// else's directories is refused at start and nothing in it is removed; a
// data root that others can read, with a store in it, is refused too.
func TestSecurityUnsafeRoots(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mountRoot := filepath.Join(dir, "home")
	precious := filepath.Join(mountRoot, "alice", "thesis.txt")
	if err := os.MkdirAll(filepath.Dir(precious), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(precious, []byte("years of work"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(mountRoot, 0o700)
	r := daemonOnce(t, nil, 20*time.Second, "--mount-root", mountRoot)
	if r.code == 0 || !strings.Contains(r.stderr, "holds entries secretd did not make (alice)") {
		t.Errorf("a mount root holding another user's directory: want refused naming it, got %s", r)
	}
	if b, err := os.ReadFile(precious); err != nil || string(b) != "years of work" {
		t.Fatalf("secretd removed a directory it did not make from --mount-root: %q, %v", b, err)
	}

	d := startDaemon(t)
	d.mustCLI("x", "secret", "create", "a", "-")
	d.stop()
	if err := os.Chmod(d.dataRoot, 0o755); err != nil {
		t.Fatal(err)
	}
	run := daemonOnce(t, nil, 20*time.Second, "--data-root", d.dataRoot)
	if run.code == 0 || !strings.Contains(run.stderr, "--data-root "+d.dataRoot+" has mode 0755") {
		t.Errorf("a data root others can read: want refused, got %s", run)
	}
	os.Chmod(d.dataRoot, 0o700)
}

// TestSecurityMountCaps: a Mount holds at most --max-mount-size bytes of
// plaintext, and a huge declaration is quoted only in part in the error,
// the log and the audit trail.
func TestSecurityMountCaps(t *testing.T) {
	t.Parallel()
	d := startTestDaemon(t, "--max-mount-size", "1KiB")
	d.mustCLI(strings.Repeat("a", 600), "secret", "create", "big1", "-")
	d.mustCLI(strings.Repeat("b", 600), "secret", "create", "big2", "-")
	if got := mustDocker(t, d.runArgs("big1", []string{"--rm", "--name", d.ctrName("one")}, "wc -c < /run/secrets/big1")...); got != "600" {
		t.Fatalf("one 600-byte secret under a 1 KiB cap: %q", got)
	}
	r := docker(t, d.runArgs("big1;big2", []string{"--rm", "--name", d.ctrName("two")}, "true")...)
	if r.code == 0 || !strings.Contains(r.stderr, "hold more than 1024 bytes (secretd daemon --max-mount-size)") {
		t.Fatalf("two 600-byte secrets under a 1 KiB cap: want refused, got %s", r)
	}
	r = docker(t, d.runArgs("big1;source=big1,target=copy", []string{"--rm", "--name", d.ctrName("twice")}, "true")...)
	if r.code == 0 || !strings.Contains(r.stderr, "--max-mount-size") {
		t.Fatalf("one 600-byte secret at two targets under a 1 KiB cap: want refused, got %s", r)
	}

	huge := "source=big1,bogus" + strings.Repeat("z", 100<<10) + "=1"
	r = docker(t, d.runArgs(huge, []string{"--rm", "--name", d.ctrName("huge")}, "true")...)
	if r.code == 0 || !strings.Contains(r.stderr, "bytes)") {
		t.Fatalf("a 100 KiB declaration entry: want refused with its text cut, got exit %d, stderr %.300s", r.code, r.stderr)
	}
	if len(r.stderr) > 4096 {
		t.Errorf("docker run's error quotes %d bytes of a 100 KiB entry", len(r.stderr))
	}
	long := strings.Repeat("z", 1024)
	if strings.Contains(d.log(), long) {
		t.Errorf("the daemon's log quotes the 100 KiB entry in full")
	}
	b, _ := os.ReadFile(filepath.Join(d.dataRoot, "audit.log"))
	if strings.Contains(string(b), long) {
		t.Errorf("the audit trail quotes the 100 KiB entry in full")
	}
}
