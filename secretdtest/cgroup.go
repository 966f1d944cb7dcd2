package secretdtest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cpuGroup is a cgroup of the daemon's own with a CPU weight, as systemd
// makes for a service with CPUWeight=. Under cgroups a nice value orders
// threads only within their group (and, with autogroup, within their
// session), so a priority against dockerd and the containers needs one.
type cpuGroup struct{ dir string }

// cgroupRoot is where the cgroup file systems are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// newCPUGroup creates the group name with weight (1-10000, systemd's
// CPUWeight; 100 is the default) on the host's cgroup hierarchy: cpu.weight
// on cgroup v2, cpu.shares (weight × 1024 / 100, as systemd converts) on v1.
func newCPUGroup(name string, weight int) (*cpuGroup, error) {
	if weight < 1 || weight > 10000 {
		return nil, fmt.Errorf("CPU weight %d is outside 1-10000", weight)
	}
	if ctrls, err := os.ReadFile(filepath.Join(cgroupRoot, "cgroup.controllers")); err == nil {
		if !strings.Contains(" "+strings.TrimSpace(string(ctrls))+" ", " cpu ") {
			return nil, errors.New("cgroup v2 without the cpu controller")
		}
		// The root's children get the cpu controller only when it is on
		// in the root's subtree_control.
		os.WriteFile(filepath.Join(cgroupRoot, "cgroup.subtree_control"), []byte("+cpu"), 0)
		return makeGroup(filepath.Join(cgroupRoot, name), "cpu.weight", weight)
	}
	for _, mnt := range []string{"cpu", "cpu,cpuacct", "cpuacct,cpu"} {
		dir := filepath.Join(cgroupRoot, mnt)
		if _, err := os.Stat(filepath.Join(dir, "cpu.shares")); err == nil {
			return makeGroup(filepath.Join(dir, name), "cpu.shares", weight*1024/100)
		}
	}
	return nil, errors.New("no cgroup cpu controller found under " + cgroupRoot)
}

func makeGroup(dir, file string, value int) (*cpuGroup, error) {
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, file), []byte(strconv.Itoa(value)), 0); err != nil {
		os.Remove(dir)
		return nil, fmt.Errorf("set %s: %w", file, err)
	}
	return &cpuGroup{dir: dir}, nil
}

// add moves process pid, all its threads, into the group.
func (g *cpuGroup) add(pid int) error {
	return os.WriteFile(filepath.Join(g.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0)
}

// remove deletes the group once its processes are gone.
func (g *cpuGroup) remove() error {
	return os.Remove(g.dir)
}
