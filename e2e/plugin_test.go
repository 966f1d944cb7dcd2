package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestPluginManaged installs secretd as a managed plugin with `make plugin`
// (config.json plus the image's file system), under a name and a data root
// of its own, and uses it as containers would: by the plugin's name as
// volume driver. The API socket is PLUGIN_DATA/secretd.sock on the host,
// through the plugin's "data" mount.
func TestPluginManaged(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not installed")
	}
	dir, err := os.MkdirTemp("", "sdp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	suffix := filepath.Base(dir)[4:]
	plugin := "secretd-e2e-plugin-" + suffix
	data := filepath.Join(dir, "data")
	tag := "secretd-e2e-plugin:" + suffix
	label := "secretd-e2e-plugin=" + suffix
	var pluginID, pluginDir string
	t.Cleanup(func() {
		removeImage(t, tag)
		if ids := strings.Fields(docker(t, "ps", "-aq", "--filter", "label="+label).stdout); len(ids) > 0 {
			docker(t, append([]string{"rm", "-f", "-v"}, ids...)...)
		}
		if vs := strings.Fields(docker(t, "volume", "ls", "-q", "--filter", "driver="+plugin+":latest").stdout); len(vs) > 0 {
			docker(t, append([]string{"volume", "rm", "-f"}, vs...)...)
		}
		if t.Failed() && pluginID != "" {
			// The engine keeps a plugin's stdout and stderr in its own log
			// only; say where to look.
			t.Logf("plugin %s (%s): its log lines are in dockerd's log, tagged plugin=%s", plugin, pluginID, pluginID)
		}
		docker(t, "plugin", "disable", "-f", plugin)
		docker(t, "plugin", "rm", "-f", plugin)
		if pluginDir != "" {
			if m := mountsUnder(t, pluginDir); len(m) > 0 {
				t.Errorf("mounts left under the removed plugin's directory: %v", m)
			}
		}
	})

	// build, image, rootfs, create, set data.source, enable
	deployMake(t, dir, "IMAGE="+tag, "PLUGIN="+plugin, "PLUGIN_DIR="+filepath.Join(dir, "plugin"), "PLUGIN_DATA="+data, "plugin")
	pluginID = mustDocker(t, "plugin", "inspect", "-f", "{{.Id}}", plugin)
	pluginDir = filepath.Join(mustDocker(t, "info", "-f", "{{.DockerRootDir}}"), "plugins", pluginID)
	if got := mustDocker(t, "plugin", "inspect", "-f", "{{.Enabled}} {{.Config.Interface.Socket}} {{.Config.PropagatedMount}} {{.Config.Network.Type}} {{.Config.Linux.Capabilities}}", plugin); got != "true secretd.sock /run/secretd/mounts none [CAP_SYS_ADMIN]" {
		t.Fatalf("plugin %s: %s", plugin, got)
	}
	if fi, err := os.Stat(data); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data root %s: %v %v, want a directory with mode 0700", data, fi, err)
	}
	sock := filepath.Join(data, "secretd.sock")
	waitSocket(t, sock)

	value := "plugin-" + suffix
	host := []string{"SECRETD_HOST=unix://" + sock}
	if r := runCmd(t, host, value, binary, "secret", "create", "db_password", "-"); r.code != 0 {
		t.Fatalf("secret create through the plugin's socket: %s", r)
	}

	// An anonymous volume with the declaration on the container.
	name := "sdp-ctr-" + suffix
	mustDocker(t, "run", "-d", "--pull", "never", "--network", "none", "--name", name, "--label", label,
		"--label", "secretd.secrets=source=db_password,target=db/pw,uid=101,gid=102,mode=0400",
		"--mount", "type=volume,volume-driver="+plugin+",dst=/run/secrets,volume-nocopy",
		image, "sleep", "300")
	checkSecretsContainer(t, mustDocker(t, "exec", name, "sh", "-c", secretsCheck), value)
	// The plugin's rootfs has no /tmp: noswap is probed under the mount root.
	checkNoswap(t, name, host)
	// Mount returned a path under propagatedmount; the engine finds it in
	// the plugin's propagated-mount directory.
	// (The host lists it twice: the engine binds propagated-mount onto
	// itself in a shared peer group, and the mount propagates to both.)
	propagated := filepath.Join(pluginDir, "propagated-mount")
	if m := slices.Compact(containerMounts(t, propagated)); len(m) != 1 {
		t.Fatalf("mounts under %s while the container runs: %v, want one tmpfs", propagated, m)
	}
	if ps := runCmd(t, host, "", binary, "ps", "--format", "{{.Name}} {{.Secret}}"); ps.code != 0 || !strings.Contains(ps.stdout, name+" db_password") {
		t.Errorf("secretd ps through the plugin: %s", ps)
	}
	mustDocker(t, "rm", "-f", "-v", name)
	waitFor(t, 10*time.Second, "the container's tmpfs to leave the host", func() bool { return len(containerMounts(t, propagated)) == 0 })

	// A named volume with the declaration in its options.
	vol := "sdp-vol-" + suffix
	mustDocker(t, "volume", "create", "-d", plugin, "-o", "secrets=source=db_password,target=db/pw,uid=101,gid=102,mode=0400", vol)
	got := mustDocker(t, "run", "--rm", "--pull", "never", "--network", "none", "--label", label,
		"-v", vol+":/run/secrets:nocopy", image, "sh", "-c", secretsCheck)
	checkSecretsContainer(t, got, value)
	mustDocker(t, "volume", "rm", vol)
	if m := containerMounts(t, propagated); len(m) != 0 {
		t.Errorf("mounts left under %s: %v", propagated, m)
	}

	// Fail closed: a disabled plugin starts no container that needs it.
	mustDocker(t, "plugin", "disable", plugin)
	r := docker(t, "run", "--rm", "--pull", "never", "--network", "none", "--label", label,
		"--label", "secretd.secrets=db_password", "--mount", "type=volume,volume-driver="+plugin+",dst=/run/secrets,volume-nocopy",
		image, "true")
	if r.code == 0 {
		t.Fatal("a container started with the plugin disabled")
	}
	t.Logf("with the plugin disabled: %s", strings.TrimSpace(r.stderr))
	mustDocker(t, "plugin", "rm", plugin)
}
