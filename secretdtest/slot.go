package secretdtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// SlotDirEnv names a directory that replaces slotDir: a test process whose
// drivers live in a plugin directory of its own (the e2e suite's mount
// namespace) needs slots unique in that process only, and leaves the
// host-wide ones to processes that share the host's plugin directory.
const SlotDirEnv = "SECRETD_TEST_SLOT_DIR"

// slotDir holds one lock file per driver-name slot, shared by every test
// process on the host that uses it.
var slotDir = func() string {
	if d := os.Getenv(SlotDirEnv); d != "" {
		return d
	}
	return "/run/lock/secretd-test"
}()

// DriverName returns prefix-N for the lowest N no other live test holds,
// and holds it until tb ends; then the slot is parked (see park). dockerd
// remembers every volume driver name it has ever used, for as long as it
// runs, and asks each of them whenever a volume name is looked up: unique
// names per test would pile up on a shared engine; a few reused ones do
// not.
func DriverName(tb testing.TB, prefix string) string {
	tb.Helper()
	if err := os.MkdirAll(slotDir, 0o755); err != nil {
		tb.Fatal(err)
	}
	for n := 0; n < 64; n++ {
		name := fmt.Sprintf("%s-%d", prefix, n)
		f, err := os.OpenFile(filepath.Join(slotDir, name+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			tb.Fatal(err)
		}
		// flock dies with the process, so a killed test frees its slot.
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		unpark(name)
		tb.Cleanup(func() {
			park(name)
			syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
			f.Close()
		})
		return name
	}
	tb.Fatalf("no free driver name slot for %s", prefix)
	return ""
}

// ParkFree parks every slot that an earlier test process used and no live
// one holds: dockerd still knows their drivers, and a test binary's
// TestMain calls this so its first compose test does not wait on them.
func ParkFree() {
	locks, _ := filepath.Glob(filepath.Join(slotDir, "*.lock"))
	for _, lock := range locks {
		f, err := os.OpenFile(lock, os.O_RDWR, 0)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			park(strings.TrimSuffix(filepath.Base(lock), ".lock"))
			syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		}
		f.Close()
	}
}
