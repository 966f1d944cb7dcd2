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
	const tag = "secretd-bench-etcd:busybox"
	if err := secretdtest.BusyboxImage([]string{"docker"}, tag, nil); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { exec.Command("docker", "rmi", "-f", tag).Run() })
	etcd := etcdtest.Start(b, 3)
	key := filepath.Join(b.TempDir(), "key")
	k := make([]byte, 32)
	rand.Read(k)
	if err := os.WriteFile(key, k, 0o600); err != nil {
		b.Fatal(err)
	}
	host := func(id string) *secretdtest.Daemon {
		opts := daemonOptions(b)
		opts.Args = append(opts.Args, "--store", etcd.URL(), "--host-id", id, "--key-file", key)
		return secretdtest.Start(b, opts)
	}
	d1 := host("host1")
	d2 := host("host2")
	d1.CreateSecret("rot", []byte("value-0000"))
	label := "secretd-bench=" + d2.Driver
	b.Cleanup(func() { removeContainers(b, label) })
	const n = 10
	var paths []string
	for range n {
		args := append([]string{"run", "-d", "--network", "none", "--label", label}, d2.RunArgs("rot", "/run/secrets")...)
		id := strings.TrimSpace(docker(b, append(args, tag, "sleep", "3600")...))
		pid := strings.TrimSpace(docker(b, "inspect", "-f", "{{.State.Pid}}", id))
		paths = append(paths, "/proc/"+pid+"/root/run/secrets/rot")
	}
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
