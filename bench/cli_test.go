package bench

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/secretd/secretd/secretdtest"
)

// BenchmarkCLI measures the CLI as a user meets it at every command
// (issue 27, goal 1): its start, `secretd --version` against `docker
// --version` (1a, at most half); `secretd secret ls` against `docker secret
// ls` on the same daemon socket (1b, at most equal); and that the CLI
// initialises none of the daemon's packages (1c). Each pair runs
// interleaved, the order swapped every round, so load on the machine falls
// on both alike. SECRETD_BENCH_CLI_RUNS sets the rounds (default 200),
// SECRETD_BENCH_CLI_SECRETS the secrets listed (default 20), and
// SECRETD_BENCH_CLI_BASELINE names another secretd binary (an older build)
// to time in the same rounds, for a before and after.
func BenchmarkCLI(b *testing.B) {
	runs := envInt(b, "SECRETD_BENCH_CLI_RUNS", 200)
	baseline := os.Getenv("SECRETD_BENCH_CLI_BASELINE")
	nSecrets := envInt(b, "SECRETD_BENCH_CLI_SECRETS", 20)
	d := secretdtest.Start(b, daemonOptions(b))
	for i := range nSecrets {
		d.CreateSecret(secretName("cli", i), []byte("x"))
	}
	dockerEnv := append(os.Environ(), "DOCKER_HOST="+d.Host)
	b.ResetTimer()
	for range b.N {
		versionRuns := []cliRun{{args: []string{binary, "--version"}, want: "secretd version "},
			{args: []string{"docker", "--version"}, want: "Docker version "}}
		lsRuns := []cliRun{{args: []string{binary, "-H", d.Host, "secret", "ls"}, lines: nSecrets + 1},
			{args: []string{"docker", "secret", "ls"}, env: dockerEnv, lines: nSecrets + 1}}
		if baseline != "" {
			versionRuns = append(versionRuns, cliRun{args: []string{baseline, "--version"}, want: "secretd version "})
			lsRuns = append(lsRuns, cliRun{args: []string{baseline, "-H", d.Host, "secret", "ls"}, lines: nSecrets + 1})
		}
		vt, lt := interleave(b, runs, versionRuns...), interleave(b, runs, lsRuns...)
		version, dockerVersion, ls, dockerLs := vt[0], vt[1], lt[0], lt[1]
		if baseline != "" {
			b.ReportMetric(ms(median(vt[2])), "baseline-version-ms")
			b.ReportMetric(ms(median(lt[2])), "baseline-ls-ms")
			b.ReportMetric(float64(median(vt[2]))/float64(median(dockerVersion)), "baseline-start-ratio")
			b.ReportMetric(float64(median(lt[2]))/float64(median(dockerLs)), "baseline-ls-ratio")
		}
		inits, initTime := cliInits(b)

		startRatio := float64(median(version)) / float64(median(dockerVersion))
		lsRatio := float64(median(ls)) / float64(median(dockerLs))
		b.ReportMetric(ms(median(version)), "version-ms")
		b.ReportMetric(ms(median(dockerVersion)), "docker-version-ms")
		b.ReportMetric(startRatio, "start-ratio")
		b.ReportMetric(ms(median(ls)), "ls-ms")
		b.ReportMetric(ms(median(dockerLs)), "docker-ls-ms")
		b.ReportMetric(lsRatio, "ls-ratio")
		b.ReportMetric(ms(initTime), "init-ms")
		reportGoal(b, goal{ID: "1a", Goal: "CLI start at most 0.5× `docker --version`",
			Measured: fmt.Sprintf("%.2f× (median of %d interleaved: %.1f ms against %.1f ms)", startRatio, runs, ms(median(version)), ms(median(dockerVersion))),
			Met:      startRatio <= 0.5})
		reportGoal(b, goal{ID: "1b", Goal: "`secretd secret ls` at most 1.0× `docker secret ls`, same daemon",
			Measured: fmt.Sprintf("%.2f× (median of %d interleaved, %d secrets: %.1f ms against %.1f ms)", lsRatio, runs, nSecrets, ms(median(ls)), ms(median(dockerLs))),
			Met:      lsRatio <= 1.0})
		var bad []string
		for _, p := range inits {
			if _, daemonPkg := secretdtest.DaemonPackage(p); daemonPkg {
				bad = append(bad, p)
			}
		}
		measured := fmt.Sprintf("none of the daemon's or compose's packages initialised (%d packages, %.1f ms of init, GODEBUG=inittrace=1)", len(inits), ms(initTime))
		if len(bad) > 0 {
			measured = fmt.Sprintf("%d of the daemon's packages initialised: %s", len(bad), strings.Join(bad, ", "))
		}
		reportGoal(b, goal{ID: "1c", Goal: "the CLI initialises none of the daemon's dependencies", Measured: measured, Met: len(bad) == 0})
	}
}

// cliRun is one command of an interleaved pair and what its output must
// hold: a prefix, or a number of lines.
type cliRun struct {
	args  []string
	env   []string
	want  string
	lines int
}

// interleave runs each of runs in turn, rounds times, each round starting
// one further along the list, and returns each one's wall times.
func interleave(b *testing.B, rounds int, runs ...cliRun) [][]time.Duration {
	b.Helper()
	times := make([][]time.Duration, len(runs))
	for i := range rounds {
		for k := range runs {
			j := (i + k) % len(runs)
			times[j] = append(times[j], runs[j].time(b))
		}
	}
	return times
}

// time runs the command once, as a shell would, and checks its output.
func (r cliRun) time(b *testing.B) time.Duration {
	b.Helper()
	cmd := exec.Command(r.args[0], r.args[1:]...)
	cmd.Env = r.env
	var out bytes.Buffer
	cmd.Stdout = &out
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if err != nil {
		b.Fatalf("%s: %v", strings.Join(r.args, " "), err)
	}
	if !strings.HasPrefix(out.String(), r.want) || (r.lines > 0 && strings.Count(out.String(), "\n") != r.lines) {
		b.Fatalf("%s printed %q, want %d lines starting %q", strings.Join(r.args, " "), out.String(), r.lines, r.want)
	}
	return took
}

// cliInits runs `secretd --version` with Go's init trace and returns the
// packages initialised and their init time in all.
func cliInits(b *testing.B) ([]string, time.Duration) {
	b.Helper()
	cmd := exec.Command(binary, "--version")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("secretd --version with inittrace: %v\n%s", err, stderr.String())
	}
	var pkgs []string
	var total time.Duration
	// Lines read "init PKG @T ms, D ms clock, ...".
	for _, l := range strings.Split(stderr.String(), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 || f[0] != "init" {
			continue
		}
		pkgs = append(pkgs, f[1])
		if d, err := time.ParseDuration(f[4] + "ms"); err == nil {
			total += d
		}
	}
	if len(pkgs) == 0 {
		b.Fatalf("no init trace from secretd --version:\n%s", stderr.String())
	}
	return pkgs, total
}
