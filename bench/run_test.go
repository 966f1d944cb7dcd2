package bench

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/secretd/secretd/secretdtest"
)

// runs is how many times each variant starts, interleaved so that drift
// in the machine's load hits both alike.
const runs = 25

// BenchmarkDockerRun compares `docker run --rm` of a container that reads
// 5 secrets from secretd with the same container reading 5 files baked
// into its image, with 1,000 secrets in the store.
func BenchmarkDockerRun(b *testing.B) {
	d := secretdtest.Start(b, daemonOptions(b))
	baked := map[string][]byte{}
	var decl []string
	for i := range 1000 {
		name := fmt.Sprintf("bench_%04d", i)
		d.CreateSecret(name, []byte(fmt.Sprintf("value-%04d-%s", i, strings.Repeat("x", 32))))
		if i < 5 {
			decl = append(decl, name)
			baked["baked/"+name] = []byte("baked")
		}
	}
	const tag = "secretd-bench:busybox"
	if err := secretdtest.BusyboxImage([]string{"docker"}, tag, baked); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { exec.Command("docker", "rmi", "-f", tag).Run() })
	read := func(dir string) string {
		return "cat " + dir + "/bench_0000 " + dir + "/bench_0001 " + dir + "/bench_0002 " + dir + "/bench_0003 " + dir + "/bench_0004 >/dev/null"
	}
	plainArgs := []string{"run", "--rm", "--network", "none", tag, "sh", "-c", read("/baked")}
	secretArgs := append(append([]string{"run", "--rm", "--network", "none"}, d.RunArgs(strings.Join(decl, ";"), "/run/secrets")...), tag, "sh", "-c", read("/run/secrets"))

	timeRun := func(args []string) time.Duration {
		start := time.Now()
		docker(b, args...)
		return time.Since(start)
	}
	// One warm-up each: the first start pays for plugin discovery.
	timeRun(plainArgs)
	timeRun(secretArgs)
	var plain, secret []time.Duration
	b.ResetTimer()
	for range b.N {
		for range runs {
			plain = append(plain, timeRun(plainArgs))
			secret = append(secret, timeRun(secretArgs))
		}
	}
	b.StopTimer()
	st, err := d.Client().Status(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	pm, sm := median(plain), median(secret)
	b.ReportMetric(ms(pm), "plain-median-ms")
	b.ReportMetric(ms(sm), "secretd-median-ms")
	b.ReportMetric(float64(sm)/float64(pm), "ratio")
	b.ReportMetric(ms(st.MountP50), "mount-p50-ms")
	b.ReportMetric(ms(st.MountP99), "mount-p99-ms")
	b.Logf("%d interleaved runs each: plain median %v, secretd median %v, overhead %.1f%%; Mount p50 %v p99 %v over %d mounts",
		len(plain), pm, sm, 100*(float64(sm)/float64(pm)-1), st.MountP50, st.MountP99, st.MountsServed)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
