package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/secretd/secretd/secretdtest"
)

// faultSecrets are the secrets every churn container reads.
var faultSecrets = map[string]string{"s1": "one-1", "s2": "two-22", "s3": "three-333", "s4": "four", "s5": "five"}

func createFaultSecrets(t *testing.T, d *daemon) {
	for name, v := range faultSecrets {
		d.mustCLI(v, "secret", "create", name, "-")
	}
}

// churnRuns is how many container runs the daemon-kill churn makes.
var churnRuns = int64(200)

// readAll is a container command printing every fault secret, in order.
const readAll = "cat /run/secrets/s1 /run/secrets/s2 /run/secrets/s3 /run/secrets/s4 /run/secrets/s5"

func wantAll() string {
	return faultSecrets["s1"] + faultSecrets["s2"] + faultSecrets["s3"] + faultSecrets["s4"] + faultSecrets["s5"]
}

// openFDs counts the daemon's open descriptors.
func openFDs(t *testing.T, pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// churn runs containers, workers at a time, each reading every fault
// secret, until stop is closed. A run that starts must print exactly the
// right content; a run may fail only while secretd or the engine is down
// (fail closed), and then the worker waits a little before the next.
func churn(t *testing.T, dockerArgs []string, d *daemon, workers int, stop <-chan struct{}, ok, failed *atomic.Int64) *sync.WaitGroup {
	var wg sync.WaitGroup
	var runs atomic.Int64
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				// Named, so a wrong read can be found in the daemon's log.
				name := fmt.Sprintf("churn-%d-%d", os.Getpid(), runs.Add(1))
				args := append(append([]string{}, dockerArgs...), d.runArgs("s1;s2;s3;s4;s5", []string{"--rm", "--name", name}, readAll)...)
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
				cancel()
				if err != nil {
					if failed.Add(1) <= 3 {
						t.Logf("a run failed (fail closed): %s", bytes.TrimSpace(out))
					}
					if strings.Contains(string(out), "secret") && strings.Contains(string(out), "not found") {
						t.Errorf("a secret went missing during churn: %s", out)
					}
					time.Sleep(200 * time.Millisecond)
					continue
				}
				if string(out) != wantAll() {
					t.Errorf("container %s read the wrong content: %q", name, out)
				}
				ok.Add(1)
			}
		}()
	}
	return &wg
}

// churnStall is how long a churn may go without a run ending before the
// engine counts as stuck: every run is bounded at 2 minutes.
const churnStall = 3 * time.Minute

// watchProgress returns a check to call while a churn runs. When no run
// has ended for churnStall, it stops the churn and fails the test with what
// dockerd's goroutines are blocked on, instead of letting the suite's
// deadline kill the run with nothing said.
func watchProgress(t *testing.T, e *secretdtest.Engine, stop chan struct{}, wg *sync.WaitGroup, ok, failed *atomic.Int64) func() {
	last, since := int64(-1), time.Now()
	return func() {
		t.Helper()
		if n := ok.Load() + failed.Load(); n != last {
			last, since = n, time.Now()
			return
		}
		if time.Since(since) < churnStall {
			return
		}
		summary := e.Stuck(8)
		close(stop)
		wg.Wait()
		t.Fatalf("no container run ended for %s (%d ended before): the engine looks stuck; its goroutines blocked for a minute or more:\n%s",
			churnStall, last, summary)
	}
}

// checkInvariants asserts what a user trusts after any fault: no plaintext
// mount outlives its container, every secret still decrypts and is right,
// and the daemon holds no more descriptors than before.
func checkInvariants(t *testing.T, dockerArgs []string, d *daemon, fdBaseline int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(d.mounts()) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if m := d.mounts(); len(m) > 0 {
		recs, _ := filepath.Glob(filepath.Join(d.mountRoot, "*.task"))
		var dump []string
		for _, r := range recs {
			b, _ := os.ReadFile(r)
			dump = append(dump, string(b))
		}
		ps := runCmd(t, nil, "", dockerArgs[0], append(dockerArgs[1:], "ps", "-a", "--format", "{{.ID}} {{.Status}} {{.Names}}")...)
		t.Fatalf("mounts left with no running container: %v\nrecords: %v\ncontainers: %s\nsecretd ps: %s", m, dump, ps.stdout, d.cli("", "ps").stdout)
	}
	if names, _ := d.Leftovers(); len(names) != 0 {
		t.Errorf("mount root holds %v with no container running", names)
	}
	args := append(append([]string{}, dockerArgs...), d.runArgs("s1;s2;s3;s4;s5", []string{"--rm"}, readAll)...)
	r := runCmd(t, nil, "", args[0], args[1:]...)
	if r.code != 0 || r.stdout != wantAll() {
		t.Fatalf("after the faults a container reads: %s", r)
	}
	if tasks := d.mustCLI("", "ps", "--format", "{{.Name}}"); tasks != "" {
		t.Errorf("task table after the faults: %q", tasks)
	}
	// Descriptors settle back: allow the API's idle keep-alive connections.
	waitFor(t, 10*time.Second, "open descriptors back to the baseline", func() bool { return openFDs(t, d.pid()) <= fdBaseline+4 })
}

// TestChurnWithDaemonKills: 200 container runs, 30 at a time, while the
// daemon is SIGKILLed at random moments and restarted.
func TestChurnWithDaemonKills(t *testing.T) {
	d := startDaemon(t, "--mount-grace", "2s")
	createFaultSecrets(t, d)
	mustDocker(t, d.runArgs("s1;s2;s3;s4;s5", []string{"--rm"}, readAll)...)
	fdBaseline := openFDs(t, d.pid())

	// 200 runs, 30 at a time, with the daemon SIGKILLed at random moments.
	var ok, failed atomic.Int64
	stop := make(chan struct{})
	wg := churn(t, []string{"docker"}, d, 30, stop, &ok, &failed)
	kills := 0
	progress := watchProgress(t, runEngine, stop, wg, &ok, &failed)
	for ok.Load()+failed.Load() < churnRuns {
		time.Sleep(time.Duration(500+rand.IntN(1500)) * time.Millisecond)
		progress()
		if kills < 4 {
			d.kill()
			time.Sleep(time.Duration(100+rand.IntN(400)) * time.Millisecond)
			d.start()
			kills++
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d runs read their secrets, %d failed closed, %d daemon kills", ok.Load(), failed.Load(), kills)
	if ok.Load() < 100 {
		t.Fatalf("only %d of the runs succeeded", ok.Load())
	}
	// Containers whose --rm could not finish while the driver was down.
	d.cleanupContainers()
	checkInvariants(t, []string{"docker"}, d, fdBaseline+0)
}

// TestChurnWithEngineKill: the same churn on a private engine that is
// SIGKILLed and restarted in the middle.
func TestChurnWithEngineKill(t *testing.T) {
	e := startEngine(t)
	d := newDaemon(t, "--docker-host", e.host, "--mount-grace", "2s")
	d.start()
	t.Cleanup(e.removeContainers)
	createFaultSecrets(t, d)
	dockerH := []string{"docker", "-H", e.host}
	fdBaseline := openFDs(t, d.pid())

	var ok, failed atomic.Int64
	stop := make(chan struct{})
	wg := churn(t, dockerH, d, 10, stop, &ok, &failed)
	waitFor(t, 2*time.Minute, "runs before the crash", func() bool { return ok.Load() >= 10 })
	e.crash()
	time.Sleep(500 * time.Millisecond)
	e.start()
	// The churn goes on until 30 runs succeeded on the restarted engine.
	after := ok.Load()
	waitFor(t, 3*time.Minute, "runs after the engine restart", func() bool { return ok.Load() >= after+30 })
	close(stop)
	wg.Wait()
	t.Logf("%d runs read their secrets, %d failed while the engine was down", ok.Load(), failed.Load())
	e.removeContainers()
	checkInvariants(t, dockerH, d, fdBaseline)
	if !strings.Contains(d.log(), "engine event stream broke") {
		t.Error("the daemon never noticed the engine going away")
	}
}

// TestDataRootFull: the data root is a small tmpfs that fills up during
// `secret create`. The error is clear, nothing half-written stays, and the
// store opens again with everything created before.
func TestDataRootFull(t *testing.T) {
	d := newDaemon(t)
	if err := os.MkdirAll(d.dataRoot, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", d.dataRoot, "tmpfs", 0, "size=2m,mode=0700"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(d.dataRoot, syscall.MNT_DETACH) })
	d.start()
	big := strings.Repeat("x", 400*1024)
	var created []string
	var full result
	for i := range 20 {
		name := "big" + strconv.Itoa(i)
		r := d.cli(big[:len(big)-i], "secret", "create", name, "-")
		if r.code != 0 {
			full = r
			break
		}
		created = append(created, name)
	}
	if full.code == 0 {
		t.Fatal("the data root never filled up")
	}
	if !strings.Contains(full.stderr, "no space left on secretd's data root") {
		t.Fatalf("full data root: %s", full)
	}
	t.Logf("%d secrets fit before: %s", len(created), strings.TrimSpace(full.stderr))
	// Nothing half-written: the refused secret does not exist.
	names := d.mustCLI("", "secret", "ls", "--format", "{{.Name}}")
	if got := len(strings.Fields(names)); got != len(created) {
		t.Fatalf("after the refused create the store lists %d secrets, want %d", got, len(created))
	}
	d.stop()
	d.start()
	if got := d.mustCLI("", "secret", "ls", "--format", "{{.Name}}"); got != names {
		t.Fatalf("after restart: %q, want %q", got, names)
	}
	// Every stored secret still decrypts: mount them all.
	decl := strings.Join(created, ";")
	r := docker(t, d.runArgs(decl, []string{"--rm"}, "wc -c /run/secrets/* | tail -1")...)
	if r.code != 0 {
		t.Fatalf("mounting the stored secrets: %s", r)
	}
	// Space freed: creating works again.
	d.mustCLI("", "secret", "rm", created[0])
	d.mustCLI("small", "secret", "create", "after", "-")
	if _, err := os.Stat(filepath.Join(d.dataRoot, "secrets.db")); err != nil {
		t.Fatal(err)
	}
}

// TestEngineStackDump: the goroutine dump a stuck churn reports can be
// taken from this run's dockerd.
func TestEngineStackDump(t *testing.T) {
	dump, err := runEngine.DumpStacks(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dump, "goroutine ") || !strings.Contains(dump, "github.com/docker/docker/") {
		t.Fatalf("not a dockerd goroutine dump (%d bytes): %.300s", len(dump), dump)
	}
}
