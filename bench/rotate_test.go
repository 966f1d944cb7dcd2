package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secretd/secretd/secretdtest"
)

// updates is how many rotations each container count is measured over.
const updates = 20

// BenchmarkRotation measures, for 1, 10 and 100 running containers, the
// time from calling `secret update` to every container reading the new
// value, and the time left after the call returned. Each container's view
// is read through /proc/PID/root, which resolves in its mount namespace:
// exactly what the process inside reads.
func BenchmarkRotation(b *testing.B) {
	const tag = "secretd-bench-rot:busybox"
	if err := secretdtest.BusyboxImage([]string{"docker"}, tag, nil); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { exec.Command("docker", "rmi", "-f", tag).Run() })
	for _, n := range []int{1, 5, 10, 100} {
		b.Run(fmt.Sprintf("containers=%d", n), func(b *testing.B) {
			d := secretdtest.Start(b, daemonOptions(b))
			d.CreateSecret("rot", []byte("value-0000"))
			label := "secretd-bench=" + d.Driver
			b.Cleanup(func() {
				out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label="+label).Output()
				if ids := strings.Fields(string(out)); len(ids) > 0 {
					exec.Command("docker", append([]string{"rm", "-f", "-v"}, ids...)...).Run()
				}
			})
			var paths []string
			for i := range n {
				args := append([]string{"run", "-d", "--network", "none", "--label", label}, d.RunArgs("rot", "/run/secrets")...)
				id := strings.TrimSpace(docker(b, append(args, tag, "sleep", "3600")...))
				pid := strings.TrimSpace(docker(b, "inspect", "-f", "{{.State.Pid}}", id))
				paths = append(paths, "/proc/"+pid+"/root/run/secrets/rot")
				_ = i
			}
			cl := d.Client()
			var total, after []time.Duration
			b.ResetTimer()
			for range b.N {
				for u := 1; u <= updates; u++ {
					want := fmt.Sprintf("value-%04d", u)
					start := time.Now()
					if _, err := cl.SecretUpdate(context.Background(), "rot", []byte(want), 0); err != nil {
						b.Fatal(err)
					}
					returned := time.Now()
					waitAll(b, paths, want)
					done := time.Now()
					total = append(total, done.Sub(start))
					after = append(after, done.Sub(returned))
				}
			}
			b.StopTimer()
			b.ReportMetric(ms(quantile(total, 50)), "total-p50-ms")
			b.ReportMetric(ms(quantile(total, 99)), "total-p99-ms")
			b.ReportMetric(ms(quantile(after, 99)), "after-return-p99-ms")
			b.Logf("%d containers, %d updates: update call to all reading new p50 %v p99 %v; after the call returned p50 %v p99 %v",
				n, len(total), quantile(total, 50), quantile(total, 99), quantile(after, 50), quantile(after, 99))
		})
	}
}

// waitAll polls every container's view until all hold want.
func waitAll(b *testing.B, paths []string, want string) {
	var wg sync.WaitGroup
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if got, err := os.ReadFile(p); err == nil && string(got) == want {
					return
				}
				if time.Now().After(deadline) {
					b.Errorf("%s never showed %s", p, want)
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	wg.Wait()
}

// quantile returns the q-th percentile of ds.
func quantile(ds []time.Duration, q int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)*q/100]
}
