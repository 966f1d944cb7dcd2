package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/secretd/secretd/internal/store/etcd/etcdtest"
)

// sharedKey writes the root key every host of a shared store needs: the
// operator copies one key file to each of them.
func sharedKey(t *testing.T) string {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(p, k, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// readMount reads a secret's file through the host side of a container's
// mount: the bytes the container reads, without a docker exec per poll.
func readMount(dir, name string) string {
	b, _ := os.ReadFile(filepath.Join(dir, name))
	return string(b)
}

// waitMount waits until the file reads want, at most timeout after start
// (when the change was asked for), and returns how long after start it did.
func waitMount(t *testing.T, start time.Time, dir, name, want string, timeout time.Duration, what string) time.Duration {
	t.Helper()
	for readMount(dir, name) != want {
		if time.Since(start) > timeout {
			t.Fatalf("%s: %s/%s reads %q after %s, want %q", what, dir, name, readMount(dir, name), timeout, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// TestMultiHost: two hosts, each a private dockerd with its own secretd,
// share one store on a three-member etcd cluster. A secret made on one
// host reaches containers on the other, rotations cross hosts within a
// second, removal is refused while any host's container uses the secret
// (until that host dies and its lease expires), one member down changes
// nothing, and without quorum running containers keep their secrets while
// new mounts and writes fail closed with a clear error.
func TestMultiHost(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	etcd := etcdtest.Start(t, 3)
	key := sharedKey(t)
	e1, e2 := startEngine(t), startEngine(t)
	hostFlags := func(e *engine, id string) []string {
		return []string{"--docker-host", e.host, "--store", etcd.URL(), "--host-id", id, "--key-file", key}
	}
	d1 := startTestDaemon(t, hostFlags(e1, "host1")...)
	t.Cleanup(e1.removeContainers)
	d2 := startTestDaemon(t, hostFlags(e2, "host2")...)
	t.Cleanup(e2.removeContainers)
	// First of the cleanups: a daemon's cleanup restarts it if the test
	// killed it, and it cannot start without quorum.
	t.Cleanup(func() {
		etcd.RestartAll()
		etcd.Ready(30 * time.Second)
	})
	t.Logf("cluster, engines and daemons up after %s", time.Since(begin).Round(time.Millisecond))
	if st := d1.status(t); st.Store != etcd.URL()+"/secretd/" {
		t.Errorf("status shows the store as %q, want %q", st.Store, etcd.URL()+"/secretd/")
	}

	// Created on host 1, mounted on host 2.
	d1.mustCLI("v1", "secret", "create", "shared", "-")
	c2 := d2.ctrName("c2")
	e2.mustDocker(d2.runArgs("shared", []string{"-d", "--name", c2}, sleeper)...)
	if got := e2.mustDocker("exec", c2, "cat", "/run/secrets/shared"); got != "v1" {
		t.Fatalf("a container on host 2 reads %q from a secret created on host 1, want v1", got)
	}

	// Updated on host 2, read on host 1 within a second.
	c1 := d1.ctrName("c1")
	e1.mustDocker(d1.runArgs("shared", []string{"-d", "--name", c1}, sleeper)...)
	m1, m2 := d1.taskMount(t, c1), d2.taskMount(t, c2)
	start := time.Now()
	d2.mustCLI("v2", "secret", "update", "shared", "-")
	took := waitMount(t, start, m1, "shared", "v2", time.Second, "an update on host 2 seen by a container on host 1")
	t.Logf("update on host 2 reached the container on host 1 %s after the update command started", took)
	if got := e1.mustDocker("exec", c1, "cat", "/run/secrets/shared"); got != "v2" {
		t.Fatalf("the container on host 1 reads %q, want v2", got)
	}

	// In use on host 1: refused on host 2, with the container named.
	d1.mustCLI("only-on-1", "secret", "create", "only1", "-")
	c1b := d1.ctrName("c1b")
	e1.mustDocker(d1.runArgs("only1", []string{"-d", "--name", c1b}, sleeper)...)
	waitClaim(t, etcd, "host1", e1.mustDocker("inspect", "-f", "{{.Id}}", c1b))
	inUse := "secret 'only1' is in use by the following container: host1/" + c1b
	if r := d2.cli("", "secret", "rm", "only1"); r.code == 0 || !strings.Contains(r.stderr, inUse) {
		t.Fatalf("secret rm on host 2 while a container on host 1 uses it: want %q, got %s", inUse, r)
	}
	if r := d2.dockerSecret("", "rm", "shared"); r.code == 0 || !strings.Contains(r.stderr, "host1/"+c1) || !strings.Contains(r.stderr, c2) {
		t.Fatalf("docker secret rm of a secret used on both hosts: want both containers named, got %s", r)
	}

	// Host 1 dies: its claims go with its lease, and only then.
	d1.kill()
	killed := time.Now()
	if r := d2.cli("", "secret", "rm", "only1"); r.code == 0 {
		t.Fatalf("secret rm succeeded right after host 1 died, before its lease could expire")
	}
	waitFor(t, 25*time.Second, "host 1's claims to expire with its lease", func() bool {
		return d2.cli("", "secret", "rm", "only1").code == 0
	})
	t.Logf("secret rm allowed %s after host 1's secretd was killed (lease TTL 10s)", time.Since(killed).Round(100*time.Millisecond))
	d1.start()
	if got := e1.mustDocker("exec", c1, "cat", "/run/secrets/shared"); got != "v2" {
		t.Fatalf("after host 1's secretd restarted its container reads %q, want v2", got)
	}

	// One member of three down: nothing changes.
	etcd.Stop(0)
	d1.mustCLI("one-down", "secret", "create", "after1", "-")
	c2b := d2.ctrName("c2b")
	e2.mustDocker(d2.runArgs("after1", []string{"-d", "--name", c2b}, sleeper)...)
	if got := e2.mustDocker("exec", c2b, "cat", "/run/secrets/after1"); got != "one-down" {
		t.Fatalf("with one etcd member down a new container reads %q, want one-down", got)
	}
	start = time.Now()
	d1.mustCLI("v3", "secret", "update", "shared", "-")
	took = waitMount(t, start, m2, "shared", "v3", time.Second, "with one member down, an update on host 1 seen on host 2")
	t.Logf("with one member down, update on host 1 reached host 2 after %s", took)

	// Two members of three down: no quorum.
	etcd.Stop(1)
	for _, c := range []struct {
		e    *engine
		name string
	}{{e1, c1}, {e2, c2}} {
		if got := c.e.mustDocker("exec", c.name, "cat", "/run/secrets/shared"); got != "v3" {
			t.Errorf("without quorum the running container %s reads %q, want v3", c.name, got)
		}
	}
	start = time.Now()
	r := e2.docker(d2.runArgs("shared", []string{"--name", d2.ctrName("noquorum")}, "cat /run/secrets/shared")...)
	const noQuorum = "secretd cannot reach its store: the etcd cluster at " // ... has no quorum or does not answer
	if r.code == 0 || !strings.Contains(r.stderr, noQuorum) || !strings.Contains(r.stderr, "has no quorum") {
		t.Errorf("docker run without quorum: want a failure saying %q...has no quorum, got %s", noQuorum, r)
	}
	t.Logf("docker run without quorum failed after %s: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(r.stderr))
	start = time.Now()
	if r := d1.cli("x", "secret", "create", "nq", "-"); r.code == 0 || !strings.Contains(r.stderr, "has no quorum") {
		t.Errorf("secret create without quorum: want a failure saying the cluster has no quorum, got %s", r)
	}
	t.Logf("secret create without quorum failed after %s", time.Since(start).Round(time.Millisecond))
	if got := readMount(m1, "shared"); got != "v3" {
		t.Errorf("after the failed calls the running container on host 1 reads %q, want v3", got)
	}

	// Quorum back: everything works again, rotations across hosts too.
	etcd.RestartAll()
	etcd.Ready(30 * time.Second)
	waitFor(t, 30*time.Second, "secret create to work again with quorum back", func() bool {
		return d1.cli("back", "secret", "create", "back", "-").code == 0
	})
	c2c := d2.ctrName("c2c")
	e2.mustDocker(d2.runArgs("back", []string{"-d", "--name", c2c}, sleeper)...)
	if got := e2.mustDocker("exec", c2c, "cat", "/run/secrets/back"); got != "back" {
		t.Fatalf("with quorum back a new container reads %q, want back", got)
	}
	// The watches come back with backoff; the update they missed, none.
	d2.mustCLI("v4", "secret", "update", "shared", "-")
	waitMount(t, time.Now(), m1, "shared", "v4", 15*time.Second, "with quorum back, an update on host 2 seen on host 1")
	start = time.Now()
	d2.mustCLI("v5", "secret", "update", "shared", "-")
	took = waitMount(t, start, m1, "shared", "v5", time.Second, "with quorum back, a second update on host 2 seen on host 1")
	t.Logf("with quorum back, update on host 2 reached host 1 after %s", took)

	// Concurrent updates of one secret from both hosts: none lost.
	d1.mustCLI("0", "secret", "create", "counter", "-")
	const each = 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	var versions []int
	for h, d := range []*daemon{d1, d2} {
		cl := d.client()
		for i := range each {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				sec, err := cl.SecretUpdate(ctx, "counter", fmt.Appendf(nil, "h%d-%d", h+1, i), 100)
				if err != nil {
					t.Errorf("concurrent update from host %d: %v", h+1, err)
					return
				}
				mu.Lock()
				versions = append(versions, sec.CurrentVersion)
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	slices.Sort(versions)
	if n := len(slices.Compact(slices.Clone(versions))); n != 2*each {
		t.Errorf("%d concurrent updates got %d distinct versions: %v", 2*each, n, versions)
	}
	var cur, kept string
	waitFor(t, 5*time.Second, "both hosts to agree on the counter", func() bool {
		cur = d1.mustCLI("", "secret", "inspect", "--format", "{{.CurrentVersion}} {{len .Versions}}", "counter")
		kept = d2.mustCLI("", "secret", "inspect", "--format", "{{.CurrentVersion}} {{len .Versions}}", "counter")
		return cur == kept
	})
	if want := fmt.Sprintf("%d %d", 2*each+1, 2*each+1); cur != want {
		t.Errorf("after %d concurrent updates from two hosts the counter is at %q (version, kept), want %q: updates were lost", 2*each, cur, want)
	}

	// A version pinned by a container on host 1 survives an update on
	// host 2 that keeps one version.
	pin := d1.ctrName("pin")
	e1.mustDocker(d1.runArgs("counter@2", []string{"-d", "--name", pin}, sleeper)...)
	waitClaim(t, etcd, "host1", e1.mustDocker("inspect", "-f", "{{.Id}}", pin))
	d2.mustCLI("last", "secret", "update", "--keep", "1", "counter", "-")
	want := fmt.Sprintf("2 %d", 2*each+2)
	if got := d2.mustCLI("", "secret", "inspect", "--format", "{{range .Versions}}{{.Version}} {{end}}", "counter"); strings.TrimSpace(got) != want {
		t.Errorf("after an update with --keep 1 on host 2 the kept versions are %q, want %q: host 1's pin was not honoured", got, want)
	}
	if got := e1.mustDocker("exec", pin, "cat", "/run/secrets/counter"); got == "" {
		t.Errorf("the pinning container reads nothing")
	}
	t.Logf("TestMultiHost took %s", time.Since(begin).Round(time.Millisecond))
}

// waitClaim waits until host has published its claim on a container.
func waitClaim(t *testing.T, c *etcdtest.Cluster, host, id string) {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	waitFor(t, 10*time.Second, "host "+host+" to publish its claim on container "+id[:12], func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		r, err := cli.Get(ctx, "/secretd/claims/"+host+"/"+id)
		return err == nil && len(r.Kvs) == 1
	})
}

// TestMultiHostMigrate: a bolt store moves into etcd as ciphertext with its
// key record, so a daemon on etcd with the same key file serves the same
// secrets; a store in use and a target that is not empty are refused.
func TestMultiHostMigrate(t *testing.T) {
	t.Parallel()
	etcd := etcdtest.Start(t, 1)
	old := startTestDaemon(t)
	old.mustCLI("first-value", "secret", "create", "first", "-")
	old.mustCLI("second-v1", "secret", "create", "second", "-")
	old.mustCLI("second-v2", "secret", "update", "second", "-")
	from := "bolt://" + filepath.Join(old.dataRoot, "secrets.db")
	to := etcd.URL()
	if r := runCmd(t, nil, "", binary, "store", "migrate", "--from", from, "--to", to); r.code == 0 || !strings.Contains(r.stderr, "another secretd holds it") {
		t.Fatalf("migrate from a store a daemon uses: want refused, got %s", r)
	}
	old.stop()
	r := runCmd(t, nil, "", binary, "store", "migrate", "--from", from, "--to", to)
	if r.code != 0 || !strings.Contains(r.stdout, "migrated 2 secrets") {
		t.Fatalf("migrate: %s", r)
	}
	if r := runCmd(t, nil, "", binary, "store", "migrate", "--from", from, "--to", to); r.code == 0 || !strings.Contains(r.stderr, "not empty") {
		t.Fatalf("migrate into a target that is not empty: want refused, got %s", r)
	}
	d := startTestDaemon(t, "--store", to, "--key-file", filepath.Join(old.dataRoot, "key"))
	name := d.ctrName("migrated")
	got := mustDocker(t, d.runArgs("first;second", []string{"--rm", "--name", name}, "cat /run/secrets/first; echo; cat /run/secrets/second")...)
	if got != "first-value\nsecond-v2" {
		t.Fatalf("a container of the daemon on the migrated store reads %q", got)
	}
	if v := d.mustCLI("", "secret", "inspect", "--format", "{{.CurrentVersion}}", "second"); v != "2" {
		t.Errorf("migrated secret is at version %s, want 2", v)
	}
}
