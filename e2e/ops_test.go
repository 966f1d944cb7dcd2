package e2e

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/secretd/secretd/api"
)

// metricsURL is where the daemon says it serves metrics (started with
// --metrics-addr 127.0.0.1:0, so the port is the kernel's choice).
func (d *daemon) metricsURL(t *testing.T) string {
	t.Helper()
	re := regexp.MustCompile(`addr=(http://127\.0\.0\.1:[0-9]+/metrics)`)
	var url string
	waitFor(t, 10*time.Second, "the metrics listener in the log", func() bool {
		if m := re.FindStringSubmatch(d.log()); m != nil {
			url = m[1]
			return true
		}
		return false
	})
	return url
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %d %v\n%s", url, resp.StatusCode, err, b)
	}
	return string(b)
}

// sample returns the value of one series in a scrape, -1 when absent.
func sample(body, series string) float64 {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return -1
	}
	return v
}

// TestMetrics scrapes a daemon serving a container: one mount active, its
// Mount timed, and no secret name or value anywhere in the scrape. Once
// the container is gone, the gauge and the daemon's descriptors come back.
func TestMetrics(t *testing.T) {
	t.Parallel()
	d := startTestDaemon(t, "--metrics-addr", "127.0.0.1:0")
	url := d.metricsURL(t)
	before := scrape(t, url)
	if v := sample(before, "secretd_mounts_active"); v != 0 {
		t.Fatalf("secretd_mounts_active before any container = %v\n%s", v, before)
	}
	if v := sample(before, "secretd_locked"); v != 0 {
		t.Errorf("secretd_locked = %v on an unlocked daemon", v)
	}
	value := canary(t)
	d.mustCLI(value, "secret", "create", "metrics_secret_name", "-")
	// A first container warms up what the daemon keeps open for good (its
	// connections to the engine, dockerd's to the plugin socket); the
	// baseline is taken after it.
	warm := d.ctrName("metrics-warm")
	mustDocker(t, d.runArgs("metrics_secret_name", []string{"--rm", "--name", warm}, "true")...)
	waitFor(t, 20*time.Second, "the warm-up container's mount to go", func() bool { return len(d.mounts()) == 0 })
	base := d.status(t)
	if base.Goroutines <= 0 || base.OpenFDs <= 0 {
		t.Fatalf("status without process counts: %+v", base)
	}

	ctr := d.ctrName("metrics")
	mustDocker(t, d.runArgs("metrics_secret_name", []string{"-d", "--name", ctr}, sleeper)...)
	body := scrape(t, url)
	if v := sample(body, "secretd_mounts_active"); v != 1 {
		t.Errorf("secretd_mounts_active = %v with one container running, want 1", v)
	}
	if v := sample(body, "secretd_mount_duration_seconds_count"); v < 2 {
		t.Errorf("secretd_mount_duration_seconds_count = %v after two containers, want >= 2", v)
	}
	for _, want := range []string{"secretd_resyncs_total", "secretd_engine_up 1", "go_goroutines", "process_open_fds", `secretd_build_info{version=`} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	for _, leak := range []string{"metrics_secret_name", value, ctr} {
		if strings.Contains(body, leak) {
			t.Errorf("the scrape contains %q", leak)
		}
	}

	mustDocker(t, "rm", "-f", "-v", ctr)
	waitFor(t, 20*time.Second, "secretd_mounts_active to drop to 0", func() bool {
		return sample(scrape(t, url), "secretd_mounts_active") == 0
	})
	// Nothing a container's life opened stays open in the daemon. Some
	// slack: connection pools (to the engine, from dockerd) may hold one
	// more idle connection after a busy moment.
	var now api.Status
	deadline := time.Now().Add(20 * time.Second)
	for {
		now = d.status(t)
		if now.OpenFDs <= base.OpenFDs+4 && now.Goroutines <= base.Goroutines+8 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not return to its baseline: open fds %d -> %d, goroutines %d -> %d",
				base.OpenFDs, now.OpenFDs, base.Goroutines, now.Goroutines)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// auditEvents reads the daemon's audit trail.
func auditEvents(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("audit line %q is not JSON: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// TestAudit follows a canary secret through its life and checks the trail
// names it at every step, with who asked, and never holds its value.
func TestAudit(t *testing.T) {
	t.Parallel()
	d := startTestDaemon(t)
	v1, v2 := canary(t), canary(t)
	const name = "audit_canary_name"
	d.mustCLI(v1, "secret", "create", name, "-")
	d.mustCLI(v2, "secret", "update", name, "-")
	ctr := d.ctrName("audit")
	mustDocker(t, d.runArgs(name, []string{"-d", "--name", ctr}, sleeper)...)
	if r := d.cli("", "secret", "rm", name); r.code == 0 {
		t.Fatalf("rm of a secret in use succeeded: %s", r)
	}
	mustDocker(t, "rm", "-f", "-v", ctr)
	waitFor(t, 20*time.Second, "the container's mount to be wiped", func() bool { return len(d.mounts()) == 0 })
	d.mustCLI("", "secret", "rm", name)
	// The daemon keeps running: each line is written whole before the
	// request is answered, and with the driver gone the cleanup's docker
	// calls would wait on the dead plugin.

	path := filepath.Join(d.dataRoot, "audit.log")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("audit.log mode %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), name) {
		t.Errorf("the trail never names %s:\n%s", name, b)
	}
	var seen []string
	for _, e := range auditEvents(t, path) {
		ev := e["event"].(string)
		if ev == "denied" {
			ev += "/" + e["action"].(string)
		}
		seen = append(seen, ev)
		if strings.HasPrefix(ev, "secret.") || ev == "denied/secret.remove" {
			actor, _ := e["actor"].(map[string]any)
			if actor == nil || actor["uid"] != 0.0 || actor["pid"] == nil {
				t.Errorf("%s without the caller's credentials: %v", ev, e)
			}
		}
		if ev == "container.mount" && e["container"] != ctr {
			t.Errorf("mount event names %v, want %s", e["container"], ctr)
		}
	}
	// In this order; dockerd may add a Mount and Unmount of its own around
	// a container start, so other lines may come between.
	want := []string{"secret.create", "secret.update", "container.mount", "denied/secret.remove", "container.wipe", "secret.remove"}
	i := 0
	for _, ev := range seen {
		if i < len(want) && ev == want[i] {
			i++
		}
	}
	if i != len(want) || seen[0] != "secret.create" || seen[len(seen)-1] != "secret.remove" {
		t.Errorf("trail events %v, want %v in this order\n%s", seen, want, b)
	}
	assertNoCanary(t, d, v1)
	assertNoCanary(t, d, v2)
}

// TestRun starts a container with `secretd run`, which passes docker run's
// arguments through, and checks both files are there, exit statuses pass
// through, and a bad --secret starts nothing.
func TestRun(t *testing.T) {
	t.Parallel()
	d := startTestDaemon(t)
	va, vb := canary(t), canary(t)
	d.mustCLI(va, "secret", "create", "a", "-")
	d.mustCLI(vb, "secret", "create", "b", "-")
	env := []string{"SECRETD_HOST=unix://" + d.sock}

	r := runCmd(t, env, "", binary, "run", "--driver", d.driver, "--secret", "a", "--secret", "source=b,target=x/b", "--",
		"--rm", "--network", "none", "--label", d.label(), image, "cat", "/run/secrets/a", "/run/secrets/x/b")
	if r.code != 0 || r.stdout != va+vb {
		t.Fatalf("secretd run: %s\nwant stdout %q", r, va+vb)
	}

	r = runCmd(t, env, "", binary, "run", "--driver", d.driver, "--secret", "a",
		"--rm", "--network", "none", "--label", d.label(), image, "sh", "-c", "exit 3")
	if r.code != 3 {
		t.Errorf("exit status of the container: %s, want 3", r)
	}

	r = runCmd(t, env, "", binary, "run", "--driver", d.driver, "--secret", "source=a,mode=999", "--",
		"--network", "none", "--label", d.label(), image, "true")
	if r.code != 125 || !strings.Contains(r.stderr, `mode "999"`) {
		t.Errorf("bad --secret: %s", r)
	}
	if out := mustDocker(t, "ps", "-aq", "--filter", "label="+d.label()); out != "" {
		t.Errorf("a bad --secret left containers: %s", out)
	}
	// A secret that does not exist fails closed at Mount: docker run fails.
	r = runCmd(t, env, "", binary, "run", "--driver", d.driver, "--secret", "missing", "--",
		"--rm", "--network", "none", "--label", d.label(), image, "true")
	if r.code == 0 || !strings.Contains(r.stderr, "missing") {
		t.Errorf("missing secret: %s", r)
	}
	if out := mustDocker(t, "ps", "-aq", "--filter", "label="+d.label(), "--filter", "status=running"); out != "" {
		t.Errorf("containers left running: %s", out)
	}
}
