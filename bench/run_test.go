package bench

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/secretd/secretd/secretdtest"
)

// defaultRounds is how many times each variant starts, interleaved so that
// drift in the machine's load hits them alike. Each round starts the
// variants in another of their six orders: a start pays for what the one
// before it left to finish (dockerd's cleanup, secretd's spare refill), so
// a fixed order would bill one variant for another. A few milliseconds of
// overhead on a start of about 200 ms needs this many rounds to stand out
// of the noise (see docs/benchmarks.md). SECRETD_BENCH_ROUNDS sets another
// count.
const defaultRounds = 200

// BenchmarkDockerRun compares `docker run --rm` of a container that reads
// 5 secrets from secretd with the same container reading 5 files baked
// into its image, with 1,000 secrets in the store. The secrets are
// declared both ways: by label, whose Mount asks the engine for the
// container, and in the volume's options (as `secretd run` does), whose
// Mount asks nothing.
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
	run := func(extra ...string) []string {
		return append([]string{"run", "--rm", "--network", "none"}, extra...)
	}
	plainArgs := append(run(), tag, "sh", "-c", read("/baked"))
	labelArgs := append(run(d.RunArgs(strings.Join(decl, ";"), "/run/secrets")...), tag, "sh", "-c", read("/run/secrets"))
	volumeArgs := append(run(d.VolumeRunArgs(strings.Join(decl, ";"), "/run/secrets")...), tag, "sh", "-c", read("/run/secrets"))

	timeRun := func(args []string) time.Duration {
		start := time.Now()
		docker(b, args...)
		return time.Since(start)
	}
	// One warm-up each: the first start pays for plugin discovery.
	timeRun(plainArgs)
	timeRun(labelArgs)
	timeRun(volumeArgs)
	logMark := len(d.Log())
	var plain, label, volume []time.Duration
	b.ResetTimer()
	orders := [][3]int{{0, 1, 2}, {1, 2, 0}, {2, 0, 1}, {0, 2, 1}, {2, 1, 0}, {1, 0, 2}}
	variants := [3]struct {
		args []string
		out  *[]time.Duration
	}{{plainArgs, &plain}, {labelArgs, &label}, {volumeArgs, &volume}}
	runs := defaultRounds
	if v := os.Getenv("SECRETD_BENCH_ROUNDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("SECRETD_BENCH_ROUNDS=%s: not a positive count", v)
		}
		runs = n
	}
	for range b.N {
		for i := range runs {
			for _, v := range orders[i%len(orders)] {
				*variants[v].out = append(*variants[v].out, timeRun(variants[v].args))
			}
		}
	}
	b.StopTimer()
	labelMounts, volumeMounts := split(parsePhases(d.Log()[logMark:]))
	if len(labelMounts) != len(label) || len(volumeMounts) != len(volume) {
		b.Fatalf("%d label and %d volume-option Mounts logged, want %d and %d", len(labelMounts), len(volumeMounts), len(label), len(volume))
	}
	pm, lm, vm := median(plain), median(label), median(volume)
	b.ReportMetric(ms(pm), "plain-median-ms")
	b.ReportMetric(ms(lm), "label-median-ms")
	b.ReportMetric(ms(vm), "volume-median-ms")
	// The overhead is the median of each round's difference to its plain
	// start, over the plain median: a round's three starts share the
	// machine's state, which drifts more between rounds than the
	// difference being measured.
	lo, vo := pairedOverhead(label, plain), pairedOverhead(volume, plain)
	b.ReportMetric(lo, "label-overhead-pct")
	b.ReportMetric(vo, "volume-overhead-pct")
	lt, vt := totals(labelMounts), totals(volumeMounts)
	b.ReportMetric(ms(quantile(lt, 99)), "label-mount-p99-ms")
	b.ReportMetric(ms(quantile(vt, 99)), "volume-mount-p99-ms")
	b.Logf("%d interleaved rounds: plain median %v; by label %v (overhead %.1f%%), Mount p50 %v p99 %v; in the volume's options %v (overhead %.1f%%), Mount p50 %v p99 %v",
		len(plain), pm, lm, lo, quantile(lt, 50), quantile(lt, 99),
		vm, vo, quantile(vt, 50), quantile(vt, 99))
}

// pairedOverhead is the median of with[i]-plain[i], in percent of the
// median of plain.
func pairedOverhead(with, plain []time.Duration) float64 {
	diffs := make([]time.Duration, len(plain))
	for i := range plain {
		diffs[i] = with[i] - plain[i]
	}
	return 100 * float64(median(diffs)) / float64(median(plain))
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
