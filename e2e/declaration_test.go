package e2e

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

// A volume's declaration belongs to the volume: its secrets option, or the
// label of the container created with it, fixed once and stored. These
// tests give every declaration form its own canaries and check that each
// container reads exactly what its volume declares.

// secretsIn lists /run/secrets (or dir) in a container and reads each file,
// as "name=value" lines.
func secretsIn(t *testing.T, ctr, dir string) string {
	t.Helper()
	return execSh(t, ctr, "cd "+dir+" && for f in $(ls); do echo \"$f=$(cat $f)\"; done")
}

// created makes a container without starting it.
func (d *daemon) created(t *testing.T, decl string, extra ...string) string {
	t.Helper()
	args := d.runArgs(decl, extra, sleeper)
	args[0] = "create"
	return mustDocker(t, args...)
}

// secrets creates one secret per name with a fresh canary, and returns the
// canaries by name.
func (d *daemon) secrets(t *testing.T, names ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, n := range names {
		out[n] = canary(t)
		d.mustCLI(out[n], "secret", "create", n, "-")
	}
	return out
}

func want(v map[string]string, names ...string) string {
	var lines []string
	slices.Sort(names)
	for _, n := range names {
		lines = append(lines, n+"="+v[n])
	}
	return strings.Join(lines, "\n")
}

var mountLineRE = regexp.MustCompile(`msg="secrets mounted" volume=(\S+) [^\n]* declared=(\w*) engine_lookup=(\w+)`)

// mountLookups returns, per volume, whether each of its Mounts asked the
// engine, from the daemon's log.
func mountLookups(log string) map[string][]bool {
	out := map[string][]bool{}
	for _, m := range mountLineRE.FindAllStringSubmatch(log, -1) {
		out[m[1]] = append(out[m[1]], m[3] == "true")
	}
	return out
}

// volumeOf returns the name of the volume a container mounts at dst.
func volumeOf(t *testing.T, docker func(...string) string, ctr, dst string) string {
	t.Helper()
	return docker("inspect", "-f", `{{range .Mounts}}{{if eq .Destination "`+dst+`"}}{{.Name}}{{end}}{{end}}`, ctr)
}

// TestDeclarationForms: a label, a volume option, a named volume shared by
// two containers, --volumes-from, `docker start` of the older container
// after a restart of secretd, and 10 label containers started in parallel.
func TestDeclarationForms(t *testing.T) {
	t.Parallel()
	onEngines(t, testDeclarationForms)
}

// testDeclarationForms is TestDeclarationForms on one engine of the matrix.
func testDeclarationForms(t *testing.T) {
	d := startTestDaemon(t)
	v := d.secrets(t, "lbl", "opt", "shared_first", "shared_second", "vf_owner", "vf_borrower", "old_first", "new_second")
	md := func(args ...string) string { return mustDocker(t, args...) }

	t.Run("label", func(t *testing.T) {
		c := d.ctrName("form-label")
		mustDocker(t, d.runArgs("lbl", []string{"-d", "--name", c}, sleeper)...)
		if got := secretsIn(t, c, "/run/secrets"); got != want(v, "lbl") {
			t.Errorf("label container reads %q", got)
		}
	})

	t.Run("volume option", func(t *testing.T) {
		// With its on-update too, as secretd run makes it, no Mount asks
		// the engine.
		vol := d.ctrName("form-opt")
		mustDocker(t, "volume", "create", "-d", d.driver, "-o", "secrets=opt", "-o", "on-update=none", vol)
		c := d.ctrName("form-opt")
		mustDocker(t, "run", "-d", "--network", "none", "--label", d.label(), "--name", c, "-v", vol+":/run/secrets", image, "sh", "-c", sleeper)
		if got := secretsIn(t, c, "/run/secrets"); got != want(v, "opt") {
			t.Errorf("option container reads %q", got)
		}
		mustDocker(t, "restart", "-t", "1", c)
		if l := mountLookups(d.log())[vol]; len(l) < 2 || slices.Contains(l, true) {
			t.Errorf("Mounts of the option volume asked the engine: %v", l)
		}
		// Without it, the volume learns its on-update from the container:
		// at its create event, or once, at the first Mount that finds the
		// container listed; never after.
		vol2 := d.ctrName("form-opt2")
		mustDocker(t, "volume", "create", "-d", d.driver, "-o", "secrets=opt", vol2)
		c2 := d.ctrName("form-opt2")
		mustDocker(t, "run", "-d", "--network", "none", "--label", d.label(), "--name", c2, "-v", vol2+":/run/secrets", image, "sh", "-c", sleeper)
		mustDocker(t, "restart", "-t", "1", c2)
		if got := secretsIn(t, c2, "/run/secrets"); got != want(v, "opt") {
			t.Errorf("option container reads %q", got)
		}
		l := mountLookups(d.log())[vol2]
		if len(l) < 2 || slices.Contains(l[1:], true) {
			t.Errorf("Mounts of the option volume without on-update asked the engine: %v, want at most the first", l)
		}
		if got := mustDocker(t, "volume", "inspect", "-f", "{{.Status.on_update}}", vol2); got != "none" {
			t.Errorf("the volume learned on-update %q, want none", got)
		}
	})

	t.Run("shared named volume", func(t *testing.T) {
		// A named volume without options binds to the label of the first
		// container created with it; the second gets that declaration,
		// not its own label.
		vol := d.ctrName("form-shared")
		mustDocker(t, "volume", "create", "-d", d.driver, vol)
		first, second := d.ctrName("shared1"), d.ctrName("shared2")
		run := func(name, decl string) {
			mustDocker(t, "run", "-d", "--network", "none", "--label", d.label(), "--label", "secretd.secrets="+decl,
				"--name", name, "-v", vol+":/run/secrets"+d.nocopy(":"), image, "sh", "-c", sleeper)
		}
		run(first, "shared_first")
		run(second, "shared_second")
		for _, c := range []string{first, second} {
			if got := secretsIn(t, c, "/run/secrets"); got != want(v, "shared_first") {
				t.Errorf("%s reads %q, want the volume's declaration (shared_first)", c, got)
			}
		}
		if b := mustDocker(t, "volume", "inspect", "-f", "{{.Status.secrets}} {{.Status.bound_by}}", vol); b != "shared_first label" {
			t.Errorf("volume inspect shows %q", b)
		}
	})

	t.Run("volumes-from", func(t *testing.T) {
		owner, borrower := d.ctrName("vfowner"), d.ctrName("vfborrower")
		d.created(t, "vf_owner", "--name", owner)
		d.created(t, "", "--name", borrower, "--label", "secretd.secrets=vf_borrower", "--volumes-from", owner)
		// The borrower starts first: its Mount is the volume's first.
		mustDocker(t, "start", borrower)
		mustDocker(t, "start", owner)
		for _, c := range []string{borrower, owner} {
			if got := secretsIn(t, c, "/run/secrets"); got != want(v, "vf_owner") {
				t.Errorf("%s reads %q, want the volume's declaration (vf_owner)", c, got)
			}
		}
	})

	t.Run("start of the older container after a restart", func(t *testing.T) {
		// The old rule, "the newest container not running", mounted the
		// newer container's label into the older one here.
		older, newer := d.ctrName("older"), d.ctrName("newer")
		d.created(t, "old_first", "--name", older)
		d.created(t, "", "--name", newer, "--label", "secretd.secrets=new_second", "--volumes-from", older)
		d.stop()
		d.start()
		mustDocker(t, "start", older)
		if got := secretsIn(t, older, "/run/secrets"); got != want(v, "old_first") {
			t.Errorf("older container reads %q, want only its own old_first", got)
		}
		// dockerd Mounts the volume inside the create, to copy the image's
		// /run/secrets into it: that Mount binds it, with the volume's one
		// lookup. The start after the restart asks nothing. Where the
		// volume is mounted with volume-nocopy (see nocopy), the start's is
		// its only Mount, bound by the create event before the restart.
		vol := volumeOf(t, md, older, "/run/secrets")
		wantLookups := []bool{true, false}
		if !engineOf(t).bindsAtCopyUp {
			wantLookups = []bool{false}
		}
		if l := mountLookups(d.log())[vol]; !slices.Equal(l, wantLookups) {
			t.Errorf("the volume's Mounts asked the engine %v, want %v: the copy at create (if any), then the start", l, wantLookups)
		}
	})

	t.Run("ten label containers in parallel", func(t *testing.T) {
		var names []string
		for i := range 10 {
			n := fmt.Sprintf("par%d", i)
			names = append(names, n)
			d.mustCLI(canary(t)+n, "secret", "create", n, "-")
		}
		var wg sync.WaitGroup
		errs := make(chan string, len(names))
		for _, n := range names {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := docker(t, d.runArgs(n, []string{"-d", "--name", d.ctrName(n)}, sleeper)...)
				if r.code != 0 {
					errs <- n + ": " + r.String()
				}
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Errorf("parallel run: %s", e)
		}
		for _, n := range names {
			got := execSh(t, d.ctrName(n), "ls /run/secrets; cat /run/secrets/"+n)
			if !strings.HasPrefix(got, n+"\ncanary-") || !strings.HasSuffix(got, n) {
				t.Errorf("%s reads %q, want only its own %s", d.ctrName(n), got, n)
			}
		}
	})

	if log := d.log(); slices.ContainsFunc(mapValues(v), func(c string) bool { return strings.Contains(log, c) }) {
		t.Error("the daemon's log holds a secret's value")
	}
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// TestImageLabelDeclaresNothing: an image's LABEL secretd.secrets, which
// docker copies into its containers' labels, does not declare secrets.
func TestImageLabelDeclaresNothing(t *testing.T) {
	t.Parallel()
	d := startTestDaemon(t)
	v := d.secrets(t, "img_secret", "own_secret")
	tag := image + "-labelled-" + d.driver
	r := runCmd(t, nil, "FROM "+image+"\nLABEL secretd.secrets=img_secret\n", "docker", "build", "-q", "-t", tag, "-")
	if r.code != 0 {
		t.Fatalf("build the labelled image: %s", r)
	}
	t.Cleanup(func() { docker(t, "rmi", "-f", tag) })
	mnt := "type=volume,volume-driver=" + d.driver + ",dst=/run/secrets"
	c := d.ctrName("imglabel")
	r = docker(t, "run", "-d", "--network", "none", "--label", d.label(), "--name", c, "--mount", mnt, tag, "sh", "-c", sleeper)
	if r.code == 0 || !strings.Contains(r.stderr, "comes from its image") || !strings.Contains(r.stderr, "--label secretd.secrets") || !strings.Contains(r.stderr, "-o secrets=") {
		t.Errorf("run with the image's declaration only: %s", r)
	}
	// The container's own label, over the image's, declares.
	c2 := d.ctrName("ownlabel")
	mustDocker(t, "run", "-d", "--network", "none", "--label", d.label(), "--label", "secretd.secrets=own_secret", "--name", c2, "--mount", mnt, tag, "sh", "-c", sleeper)
	if got := secretsIn(t, c2, "/run/secrets"); got != want(v, "own_secret") {
		t.Errorf("container with its own label reads %q", got)
	}
}

// TestUnboundVolumeFailsClosed: a volume without a secrets option whose
// containers do not all carry the same label is never guessed at: the
// start fails with an error that says what to do.
func TestUnboundVolumeFailsClosed(t *testing.T) {
	t.Parallel()
	d := startTestDaemon(t)
	d.secrets(t, "fc_b")
	vol := d.ctrName("failclosed")
	mustDocker(t, "volume", "create", "-d", d.driver, vol)
	create := func(name string, labels ...string) {
		args := []string{"create", "--network", "none", "--label", d.label(), "--name", name,
			"--mount", "type=volume,src=" + vol + ",dst=/run/secrets,volume-nocopy"}
		for _, l := range labels {
			args = append(args, "--label", l)
		}
		mustDocker(t, append(args, image, "sh", "-c", sleeper)...)
	}
	a, b := d.ctrName("fca"), d.ctrName("fcb")
	create(a)
	create(b, "secretd.secrets=fc_b")
	r := docker(t, "start", b)
	if r.code == 0 || !strings.Contains(r.stderr, "container "+a+" using it has no secretd.secrets label") || !strings.Contains(r.stderr, "-o secrets=") {
		t.Errorf("start with a container that declares nothing on the volume: %s", r)
	}
	if got := mustDocker(t, "volume", "inspect", "-f", "{{.Status.secrets}}", vol); got != "<no value>" {
		t.Errorf("the volume was bound to %q", got)
	}
}
