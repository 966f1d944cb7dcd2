package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secretd/secretd/internal/store/etcd/etcdtest"
	"github.com/secretd/secretd/secretdtest"
)

// BenchmarkRotationEtcd measures a rotation across hosts: `secret update`
// on host 1 until every container of host 2 reads the new value. The two
// hosts are two secretd daemons sharing a three-member embedded etcd
// cluster and a key file, each with its own volume driver on this machine's
// engine; host 2 learns of the update only through its etcd watch.
func BenchmarkRotationEtcd(b *testing.B) {
	d1, d2, tag := twoEtcdHosts(b)
	d1.CreateSecret("rot", []byte("value-0000"))
	const n = 10
	paths := runFollowing(b, d2, tag, "rot", n)
	cl := d1.Client()
	var total []time.Duration
	b.ResetTimer()
	for range b.N {
		for u := 1; u <= updates; u++ {
			want := fmt.Sprintf("value-%04d", u)
			start := time.Now()
			if _, err := cl.SecretUpdate(context.Background(), "rot", []byte(want), 0); err != nil {
				b.Fatal(err)
			}
			waitAll(b, paths, want)
			total = append(total, time.Since(start))
		}
	}
	b.StopTimer()
	b.ReportMetric(ms(quantile(total, 50)), "total-p50-ms")
	b.ReportMetric(ms(quantile(total, 99)), "total-p99-ms")
	b.Logf("update on host 1 until %d containers on host 2 read it, %d updates: p50 %v p99 %v (goal p99 <= 100ms)",
		n, len(total), quantile(total, 50), quantile(total, 99))
}

// twoEtcdHosts starts two secretd daemons, host 1 and host 2, sharing a
// three-member embedded etcd cluster and a key file, each with its own
// volume driver on this machine's engine, and builds a busybox image
// (its tag returned) for their containers.
func twoEtcdHosts(b *testing.B) (d1, d2 *secretdtest.Daemon, tag string) {
	tag = etcdBenchImage(b)
	d1, d2 = hostPair(b, etcdtest.Start(b, 3), binary, "")
	return d1, d2, tag
}

// etcdBenchImage builds the busybox image of the etcd benchmarks' containers.
func etcdBenchImage(b *testing.B) string {
	const tag = "secretd-bench-etcd:busybox"
	if err := secretdtest.BusyboxImage([]string{"docker"}, tag, nil); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { exec.Command("docker", "rmi", "-f", tag).Run() })
	return tag
}

// hostPair starts host 1 and host 2 from bin on the store under prefix
// (the default when empty) of etcd, with a key file of their own.
func hostPair(b *testing.B, etcd *etcdtest.Cluster, bin, prefix string) (d1, d2 *secretdtest.Daemon) {
	key := filepath.Join(b.TempDir(), "key")
	k := make([]byte, 32)
	rand.Read(k)
	if err := os.WriteFile(key, k, 0o600); err != nil {
		b.Fatal(err)
	}
	host := func(id string) *secretdtest.Daemon {
		opts := daemonOptions(b)
		opts.Binary = bin
		opts.Args = append(opts.Args, "--store", etcd.URL(), "--host-id", id, "--key-file", key)
		if prefix != "" {
			opts.Args = append(opts.Args, "--etcd-prefix", prefix)
		}
		d := secretdtest.Start(b, opts)
		name := "etcd-" + id
		if prefix != "" {
			name = strings.Trim(prefix, "/") + "-" + id
		}
		keepLog(b, d, name)
		return d
	}
	return host("host1"), host("host2")
}

// runFollowing runs n containers of image tag on d's engine that declare
// the secret name, and returns the path through which the host reads each
// one's file as the container does (/proc/PID/root resolves in its mount
// namespace). They are removed at cleanup.
func runFollowing(b *testing.B, d *secretdtest.Daemon, tag, name string, n int) []string {
	label := "secretd-bench=" + d.Driver
	b.Cleanup(func() { removeContainers(b, label) })
	var paths []string
	for range n {
		args := append([]string{"run", "-d", "--pull", "never", "--network", "none", "--label", label}, d.RunArgs(name, "/run/secrets")...)
		id := strings.TrimSpace(docker(b, append(args, tag, "sleep", "3600")...))
		pid := strings.TrimSpace(docker(b, "inspect", "-f", "{{.State.Pid}}", id))
		paths = append(paths, "/proc/"+pid+"/root/run/secrets/"+name)
	}
	return paths
}
