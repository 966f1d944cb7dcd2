package bench

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secretd/secretd/secretdtest"
)

// BenchmarkSwarmRotation measures what secretd replaces: rotating a secret
// of a 5-replica service on a one-node Swarm, started on a private dockerd
// (never the shared engine), with `docker service update --secret-rm old
// --secret-add source=new,target=old`, which restarts every task. The tasks
// exit on SIGTERM at once, so the time is Swarm's, not a stop timeout's.
func BenchmarkSwarmRotation(b *testing.B) {
	dir, err := os.MkdirTemp("", "sw-")
	if err != nil {
		b.Fatal(err)
	}
	sock := filepath.Join(dir, "d.sock")
	os.WriteFile(filepath.Join(dir, "daemon.json"), []byte("{}"), 0o644)
	var logs bytes.Buffer
	dockerd := exec.Command("dockerd", "--config-file", filepath.Join(dir, "daemon.json"),
		"--data-root", filepath.Join(dir, "root"), "--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "pid"), "-H", "unix://"+sock,
		"--bridge=none", "--iptables=false", "--ip6tables=false", "--storage-driver", "vfs")
	dockerd.Stdout, dockerd.Stderr = &logs, &logs
	if err := dockerd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stopEngine(dockerd, dir) })
	h := func(args ...string) string {
		b.Helper()
		out, err := exec.Command("docker", append([]string{"-H", "unix://" + sock}, args...)...).CombinedOutput()
		if err != nil {
			b.Fatalf("docker %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	deadline := time.Now().Add(60 * time.Second)
	for exec.Command("docker", "-H", "unix://"+sock, "version").Run() != nil {
		if time.Now().After(deadline) {
			b.Fatalf("private dockerd did not start:\n%s", logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	const tag = "secretd-bench-swarm:busybox"
	if err := secretdtest.BusyboxImage([]string{"docker", "-H", "unix://" + sock}, tag, nil); err != nil {
		b.Fatal(err)
	}
	h("swarm", "init", "--advertise-addr", "127.0.0.1", "--listen-addr", "127.0.0.1:0")
	create := func(name, data string) {
		c := exec.Command("docker", "-H", "unix://"+sock, "secret", "create", name, "-")
		c.Stdin = strings.NewReader(data)
		if out, err := c.CombinedOutput(); err != nil {
			b.Fatalf("secret create: %v\n%s", err, out)
		}
	}
	create("v0", "value-0")
	start := time.Now()
	h("service", "create", "-q", "--name", "rot", "--replicas", "5", "--secret", "source=v0,target=s",
		tag, "sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done")
	b.Logf("service with 5 replicas converged in %v", time.Since(start))
	var took []time.Duration
	b.ResetTimer()
	for i := range b.N {
		prev, next := fmt.Sprintf("v%d", i), fmt.Sprintf("v%d", i+1)
		create(next, "value-"+next)
		start := time.Now()
		h("service", "update", "-q", "--secret-rm", prev, "--secret-add", "source="+next+",target=s", "rot")
		took = append(took, time.Since(start))
	}
	b.StopTimer()
	b.ReportMetric(ms(median(took)), "swarm-5-replicas-ms")
	b.Logf("Swarm rotation of 5 replicas (service update, converged): %v", median(took))
}

// stopEngine stops a private dockerd and whatever it left: containerd,
// shims, mounts under its directory.
func stopEngine(cmd *exec.Cmd, dir string) {
	exec.Command("docker", "-H", "unix://"+filepath.Join(dir, "d.sock"), "swarm", "leave", "-f").Run()
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(dir)) {
			var pid int
			fmt.Sscanf(filepath.Base(filepath.Dir(p)), "%d", &pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	var under []string
	for _, line := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir) {
			under = append(under, f[4])
		}
	}
	for i := len(under) - 1; i >= 0; i-- {
		syscall.Unmount(under[i], syscall.MNT_DETACH)
	}
	os.RemoveAll(dir)
}
