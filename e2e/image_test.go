package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secretd/secretd/secretdtest"
)

// deployRoot is the repository's root: `make` and the files under deploy/
// are tested as they are, not copies.
func deployRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// deployMake runs `make TARGET VAR=...` at the repository's root with every
// output path in dir, so it never touches bin/ or deploy/*/build of the work
// tree, and returns what make printed.
func deployMake(t testing.TB, dir string, args ...string) string {
	t.Helper()
	args = append([]string{"-C", deployRoot(t),
		"BIN=" + filepath.Join(dir, "bin", "secretd"),
		"IMAGE_CTX=" + filepath.Join(dir, "image-context"),
	}, args...)
	start := time.Now()
	cmd := exec.Command("make", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	t.Logf("make %s: %s", args[len(args)-1], time.Since(start).Round(10*time.Millisecond))
	return out.String()
}

// deployImage builds the secretd image with `make image` under a tag of
// this test, removed at cleanup.
func deployImage(t testing.TB, dir, tag string) {
	t.Helper()
	t.Cleanup(func() { removeImage(t, tag) })
	deployMake(t, dir, "IMAGE="+tag, "image")
	if got := mustDocker(t, "image", "inspect", "-f", "{{json .Config.Entrypoint}} {{len .RootFS.Layers}}", tag); got != `["/secretd"] 1` {
		t.Fatalf("image %s: entrypoint and layers %s, want the binary alone", tag, got)
	}
}

// removeImage removes a test's image, and says so if the engine refuses.
func removeImage(t testing.TB, tag string) {
	if r := docker(t, "rmi", "-f", tag); r.code != 0 && !strings.Contains(r.stderr, "No such image") {
		t.Logf("image %s left behind: %s", tag, strings.TrimSpace(r.stderr))
	}
}

// sharedDir makes dir a mount point of its own with shared propagation, as
// /run is on a systemd host: Docker accepts a `rshared` bind of it only
// then. Undone at cleanup (registered first, so it runs last).
func sharedDir(t testing.TB, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("sh", "-c", "grep ' "+dir+"/' /proc/self/mountinfo | cut -d' ' -f5 | sort -r | xargs -r umount -l").Run()
		exec.Command("umount", "-l", dir).Run()
	})
	for _, args := range [][]string{{"--bind", dir, dir}, {"--make-rshared", dir}} {
		if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
			t.Fatalf("mount %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
}

// containerMounts lists the containers' mounts under dir: the daemon's
// free spare mounts are not any container's.
func containerMounts(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	for _, m := range mountsUnder(t, dir) {
		if !secretdtest.IsSpare(m) {
			out = append(out, m)
		}
	}
	return out
}

// mountsUnder lists every mount under dir.
func mountsUnder(t testing.TB, dir string) []string {
	t.Helper()
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			out = append(out, f[4])
		}
	}
	return out
}

// waitSocket waits until path is a socket.
func waitSocket(t testing.TB, path string) {
	t.Helper()
	waitFor(t, 20*time.Second, path, func() bool {
		fi, err := os.Stat(path)
		return err == nil && fi.Mode()&os.ModeSocket != 0
	})
}

// secretsCheck is the shell command a test container runs: the declared
// file's owner, mode and content, and how /run/secrets is mounted.
const secretsCheck = `stat -c '%u:%g %a' /run/secrets/db/pw; cat /run/secrets/db/pw; echo; grep ' /run/secrets ' /proc/mounts | cut -d' ' -f3,4 | cut -d, -f1`

// checkSecretsContainer asserts what secretsCheck printed.
func checkSecretsContainer(t testing.TB, got, value string) {
	t.Helper()
	want := "101:102 400\n" + value + "\ntmpfs ro"
	if strings.TrimSpace(got) != want {
		t.Fatalf("container saw:\n%s\nwant:\n%s", got, want)
	}
}

// TestImageCompose builds the image with `make image` and runs it with
// deploy/compose/docker-compose.yml itself (its variables move every host
// path into a temporary directory), then uses it as any container would.
func TestImageCompose(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"make", "docker-compose"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	dir, err := os.MkdirTemp("", "sdi-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	suffix := filepath.Base(dir)[4:]
	tag := "secretd-e2e-image:" + strings.ToLower(suffix)
	driver := secretdtest.DriverName(t, "secretd-e2e-image")
	run := filepath.Join(dir, "run") // API socket and mount root
	sharedDir(t, run)
	deployImage(t, dir, tag)

	project := "sdi" + strings.ToLower(suffix)
	env := []string{"SECRETD_IMAGE=" + tag, "SECRETD_DRIVER=" + driver, "SECRETD_RUN=" + run, "SECRETD_DATA=" + filepath.Join(dir, "data")}
	composeFile := filepath.Join(deployRoot(t), "deploy", "compose", "docker-compose.yml")
	compose := func(args ...string) result {
		return runCmd(t, env, "", "docker-compose", append([]string{"-p", project, "-f", composeFile}, args...)...)
	}
	label := "secretd-e2e-image=" + suffix
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("secretd container log:\n%s", compose("logs", "--no-color").stdout)
		}
		if ids := strings.Fields(docker(t, "ps", "-aq", "--filter", "label="+label).stdout); len(ids) > 0 {
			docker(t, append([]string{"rm", "-f", "-v"}, ids...)...)
		}
		compose("down", "-v", "--remove-orphans", "-t", "5")
	})

	start := time.Now()
	if r := compose("up", "-d"); r.code != 0 {
		t.Fatalf("docker-compose up: %s", r)
	}
	sock := filepath.Join(run, "secretd.sock")
	waitSocket(t, sock)
	waitSocket(t, filepath.Join("/run/docker/plugins", driver+".sock"))
	t.Logf("docker-compose up to both sockets: %s", time.Since(start).Round(time.Millisecond))

	// The container runs with exactly the privileges the compose file
	// says, and no network.
	ctr := strings.TrimSpace(compose("ps", "-q", "secretd").stdout)
	if ctr == "" {
		t.Fatal("docker-compose ps: no secretd container")
	}
	got := mustDocker(t, "inspect", "-f", "{{.HostConfig.NetworkMode}} {{.HostConfig.ReadonlyRootfs}} {{.HostConfig.CapDrop}} {{.HostConfig.CapAdd}}", ctr)
	if got != "none true [ALL] [SYS_ADMIN CHOWN FOWNER DAC_OVERRIDE]" {
		t.Errorf("secretd container runs with %q", got)
	}

	value := "image-" + suffix
	host := "SECRETD_HOST=unix://" + sock
	if r := runCmd(t, []string{host}, value, binary, "secret", "create", "db_password", "-"); r.code != 0 {
		t.Fatalf("secret create through the container's socket: %s", r)
	}
	// The CLI inside the image finds the socket through the environment
	// the compose file sets.
	if r := compose("exec", "-T", "secretd", "/secretd", "secret", "ls", "--format", "{{.Name}}"); r.code != 0 || strings.TrimSpace(r.stdout) != "db_password" {
		t.Fatalf("secretd secret ls inside the container: %s", r)
	}

	name := "sdi-ctr-" + suffix
	mustDocker(t, "run", "-d", "--pull", "never", "--network", "none", "--name", name, "--label", label,
		"--label", "secretd.secrets=source=db_password,target=db/pw,uid=101,gid=102,mode=0400",
		"--mount", "type=volume,volume-driver="+driver+",dst=/run/secrets,volume-nocopy",
		image, "sleep", "300")
	checkSecretsContainer(t, mustDocker(t, "exec", name, "sh", "-c", secretsCheck), value)
	// The image has no /tmp: noswap is probed under the mount root.
	checkNoswap(t, name, []string{host})
	mounts := filepath.Join(run, "mounts")
	if m := containerMounts(t, mounts); len(m) != 1 {
		t.Fatalf("host mounts under %s while the container runs: %v, want one tmpfs (rshared propagation)", mounts, m)
	}
	mustDocker(t, "rm", "-f", "-v", name)
	waitFor(t, 10*time.Second, "the container's tmpfs to leave the host", func() bool { return len(containerMounts(t, mounts)) == 0 })

	if r := compose("down", "-v", "-t", "10"); r.code != 0 {
		t.Fatalf("docker-compose down: %s", r)
	}
	// A stopped daemon takes its spare mounts with it.
	if m := mountsUnder(t, mounts); len(m) != 0 {
		t.Errorf("mounts left under %s after docker-compose down: %v", mounts, m)
	}
	if _, err := os.Stat(filepath.Join("/run/docker/plugins", driver+".sock")); !os.IsNotExist(err) {
		t.Errorf("plugin socket still there after docker-compose down (err %v)", err)
	}
}
