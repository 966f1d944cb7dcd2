package e2e

import (
	"regexp"
	"strings"
	"testing"
)

var labelMountRE = regexp.MustCompile(`msg="secrets mounted" container=(\S+) [^\n]* declared=label engine_lookup=(\w+)`)

// labelLookups returns, per container name, whether each of its label
// Mounts asked the engine, from the daemon's log.
func labelLookups(log string) map[string][]bool {
	out := map[string][]bool{}
	for _, m := range labelMountRE.FindAllStringSubmatch(log, -1) {
		out[m[1]] = append(out[m[1]], m[2] == "true")
	}
	return out
}

// TestLabelMountLearnsContainerAtCreate: the Mount of a label-declared
// anonymous volume finds its container from the container's create, not by
// asking the engine at start; every content is right either way.
func TestLabelMountLearnsContainerAtCreate(t *testing.T) {
	t.Parallel()
	d := startTestDaemon(t)
	value := canary(t)
	d.mustCLI(value, "secret", "create", "born_pass", "-")
	var names []string
	for i := range 3 {
		name := d.ctrName("born" + string(rune('a'+i)))
		names = append(names, name)
		if got := mustDocker(t, d.runArgs("born_pass", []string{"--rm", "--name", name}, "cat /run/secrets/born_pass")...); got != value {
			t.Fatalf("%s read %q", name, got)
		}
	}
	// dockerd Mounts each volume twice: inside the create, to copy the
	// image's content (that one asks the engine), and at the start.
	// Learning at the create races the start only on a host too busy to
	// look a container up in 250 ms: one start of three must have asked
	// nothing.
	lookups := labelLookups(d.log())
	skipped := 0
	for _, n := range names {
		l := lookups[n]
		if len(l) != 2 {
			t.Fatalf("%s: %d label Mounts logged, want 2, the copy at create and the start (%v)", n, len(l), lookups)
		}
		if !l[1] {
			skipped++
		}
	}
	if skipped == 0 {
		t.Errorf("every start's label Mount asked the engine: %v", lookups)
	}

	// A restart mounts again, asking the engine: the learned container is
	// used once.
	name := d.ctrName("bornrestart")
	mustDocker(t, d.runArgs("born_pass", []string{"-d", "--name", name}, sleeper)...)
	mustDocker(t, "restart", "-t", "1", name)
	if got := execSh(t, name, "cat /run/secrets/born_pass"); got != value {
		t.Fatalf("after restart read %q", got)
	}
	if l := labelLookups(d.log())[name]; len(l) != 3 || !l[2] {
		t.Errorf("%s's Mounts asked the engine: %v, want the restart's (the third) to", name, l)
	}
	mustDocker(t, "rm", "-f", "-v", name)
}

// TestVolumesFromGetsItsOwnDeclaration: a second container created with
// the first one's volume voids what the first one's create taught, so each
// start mounts its own declaration.
func TestVolumesFromGetsItsOwnDeclaration(t *testing.T) {
	t.Parallel()
	d := startTestDaemon(t)
	first, second := canary(t), canary(t)
	d.mustCLI(first, "secret", "create", "vf_first", "-")
	d.mustCLI(second, "secret", "create", "vf_second", "-")
	owner, borrower := d.ctrName("vfowner"), d.ctrName("vfborrower")
	args := d.runArgs("vf_first", []string{"--name", owner}, sleeper)
	args[0] = "create"
	mustDocker(t, args...)
	args = d.runArgs("", []string{"--name", borrower, "--label", "secretd.secrets=vf_second", "--volumes-from", owner}, sleeper)
	args[0] = "create"
	mustDocker(t, args...)
	t.Cleanup(func() { docker(t, "rm", "-f", "-v", borrower, owner) })

	// The borrower starts first: its Mount is the volume's first.
	mustDocker(t, "start", borrower)
	if got := execSh(t, borrower, "ls /run/secrets; cat /run/secrets/vf_second"); got != "vf_second\n"+second {
		t.Errorf("borrower sees %q, want only its own vf_second", got)
	}
	mustDocker(t, "start", owner)
	if got := execSh(t, owner, "ls /run/secrets; cat /run/secrets/vf_first"); got != "vf_first\n"+first {
		t.Errorf("owner sees %q, want only its own vf_first", got)
	}
	// The owner's start asks too: the borrower's create voided what the
	// owner's taught.
	for _, n := range []string{owner, borrower} {
		if l := labelLookups(d.log())[n]; len(l) == 0 || !l[len(l)-1] {
			t.Errorf("%s's start Mount did not ask the engine: %v", n, l)
		}
	}
	if strings.Contains(d.log(), first) || strings.Contains(d.log(), second) {
		t.Error("the daemon's log holds a secret's value")
	}
}
