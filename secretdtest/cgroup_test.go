package secretdtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestCPUGroup: the group gets the weight systemd would give a unit with
// CPUWeight=, a process moved into it is there with all its threads, and
// the group goes away once the process is gone.
func TestCPUGroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("cgroups need root")
	}
	if _, err := newCPUGroup("x", 0); err == nil {
		t.Error("weight 0 accepted")
	}
	if _, err := newCPUGroup("x", 10001); err == nil {
		t.Error("weight 10001 accepted")
	}
	g, err := newCPUGroup("secretd-test-cgroup-"+strconv.Itoa(os.Getpid()), 1000)
	if err != nil {
		t.Fatal(err)
	}
	file, want := "cpu.shares", "10240"
	if _, err := os.Stat(filepath.Join(g.dir, "cpu.weight")); err == nil {
		file, want = "cpu.weight", "1000"
	}
	if b, err := os.ReadFile(filepath.Join(g.dir, file)); err != nil || strings.TrimSpace(string(b)) != want {
		t.Errorf("%s = %q, %v; want %s", file, b, err, want)
	}
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := g.add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/cgroup"); err != nil || !strings.Contains(string(b), "/"+filepath.Base(g.dir)+"\n") {
		t.Errorf("the process's cgroups: %s %v; want %s among them", b, err, filepath.Base(g.dir))
	}
	cmd.Process.Kill()
	cmd.Wait()
	if err := g.remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(g.dir); !os.IsNotExist(err) {
		t.Errorf("group still there: %v", err)
	}
}
