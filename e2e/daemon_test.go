package e2e

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/secretd/secretd/api/client"
	"github.com/secretd/secretd/secretdtest"
)

// daemon is one secretd started by a test on its own socket, data root,
// mount root and driver name (secretdtest does the starting and stopping),
// with the helpers the e2e tests drive it through.
type daemon struct {
	*secretdtest.Daemon
	args      []string
	t         testing.TB
	dir       string
	dataRoot  string
	mountRoot string
	sock      string
	driver    string
	// eng is the engine of the matrix the daemon follows; nil when the
	// test gave it a private engine (--docker-host) and cleans up itself.
	eng *suiteEngine
}

// newDaemon prepares (but does not start) a daemon.
func newDaemon(t testing.TB, extra ...string) *daemon {
	t.Helper()
	var eng *suiteEngine
	if !slices.Contains(extra, "--docker-host") {
		eng = engineOf(t)
		if eng.host != "" {
			extra = append(slices.Clip(extra), "--docker-host", eng.host)
		}
	}
	sd := secretdtest.New(t, secretdtest.Options{Binary: binary, Args: extra})
	d := &daemon{
		Daemon: sd, args: extra, t: t, dir: sd.Dir, dataRoot: sd.DataRoot, mountRoot: sd.MountRoot,
		sock: sd.Socket, driver: sd.Driver, eng: eng,
	}
	// Registered after secretdtest's own cleanup, so it runs first:
	// containers go while the driver can still answer their Unmounts (with
	// it stopped, dockerd waits on a dead plugin); secretdtest then stops
	// the daemon and fails the test on any mount left behind.
	t.Cleanup(func() {
		if d.Pid() == 0 {
			d.Start()
		}
		d.cleanupContainers()
		d.Stop()
	})
	return d
}

// startDaemon starts a fresh daemon and waits until its API answers.
func startDaemon(t testing.TB, extra ...string) *daemon {
	t.Helper()
	d := newDaemon(t, extra...)
	d.start()
	return d
}

func (d *daemon) start()         { d.t.Helper(); d.Start() }
func (d *daemon) stop()          { d.Stop() }
func (d *daemon) kill()          { d.Kill() }
func (d *daemon) pid() int       { return d.Pid() }
func (d *daemon) log() string    { return d.Log() }
func (d *daemon) stdout() string { return d.Stdout() }

// cli runs the secretd CLI against this daemon, and against its engine
// for the commands that run docker.
func (d *daemon) cli(stdin string, args ...string) result {
	d.t.Helper()
	return runCmd(d.t, append(d.engineEnv(), "SECRETD_HOST=unix://"+d.sock), stdin, binary, args...)
}

// nocopy is the engine's nocopy (see suiteEngine.nocopy); a daemon on a
// private engine takes the one of the test's engine of the matrix, of
// whose version the private engine is.
func (d *daemon) nocopy(sep string) string {
	if d.eng == nil {
		return engineOf(d.t).nocopy(sep)
	}
	return d.eng.nocopy(sep)
}

// engineEnv reaches the daemon's engine of the matrix.
func (d *daemon) engineEnv() []string {
	if d.eng == nil {
		return nil
	}
	return d.eng.env()
}

// mustCLI runs the CLI and fails the test unless it succeeds.
func (d *daemon) mustCLI(stdin string, args ...string) string {
	d.t.Helper()
	r := d.cli(stdin, args...)
	if r.code != 0 {
		d.t.Fatalf("secretd %s: %s", strings.Join(args, " "), r)
	}
	return strings.TrimSpace(r.stdout)
}

// dockerSecret runs the stock docker CLI with DOCKER_HOST at secretd.
func (d *daemon) dockerSecret(stdin string, args ...string) result {
	d.t.Helper()
	return runCmd(d.t, []string{"DOCKER_HOST=unix://" + d.sock}, stdin, "docker", append([]string{"secret"}, args...)...)
}

// client returns a Go API client for this daemon.
func (d *daemon) client() *client.Client {
	c, err := client.New("unix://"+d.sock, nil)
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(c.Close)
	return c
}

// label is the label every container a test starts carries, so cleanup
// removes exactly this test's containers.
func (d *daemon) label() string { return "secretd-e2e=" + d.driver }

// run starts a container on the shared engine with this daemon's driver.
// decl goes to the secretd.secrets label; extra are more docker run flags
// placed before the image; cmd is the shell command.
func (d *daemon) runArgs(decl string, extra []string, cmd string) []string {
	args := []string{"run", "--network", "none", "--label", d.label()}
	if decl != "" {
		args = append(args, "--label", "secretd.secrets="+decl,
			"--mount", "type=volume,volume-driver="+d.driver+",dst=/run/secrets"+d.nocopy(","))
	}
	args = append(args, extra...)
	return append(args, image, "sh", "-c", cmd)
}

// cleanupContainers removes this test's containers and volumes. Each call
// is bounded: a cleanup that hangs hides the failure it cleans up after.
func (d *daemon) cleanupContainers() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// A daemon following a private engine has nothing on the matrix's;
	// its test removes the private engine's containers (removeContainers).
	if d.eng == nil {
		return
	}
	dockerCmd := func(args ...string) *exec.Cmd {
		a := d.eng.dockerArgs()
		return exec.CommandContext(ctx, a[0], append(a[1:], args...)...)
	}
	out, _ := dockerCmd("ps", "-aq", "--filter", "label="+d.label()).Output()
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		dockerCmd(append([]string{"rm", "-f", "-v"}, ids...)...).Run()
	}
	// Filtered by driver, the list asks only this driver; names dockerd
	// does not know must never reach `volume rm`, which would ask every
	// driver dockerd ever knew, dead ones included, for each.
	out, _ = dockerCmd("volume", "ls", "-q", "--filter", "driver="+d.driver).Output()
	if vs := strings.Fields(string(out)); len(vs) > 0 {
		dockerCmd(append([]string{"volume", "rm", "-f"}, vs...)...).Run()
	}
	if ctx.Err() != nil {
		d.t.Errorf("cleanup of the test's containers timed out")
	}
}

// mounts lists the tmpfs mounts under this daemon's mount root.
func (d *daemon) mounts() []string { return d.Mounts() }

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}
