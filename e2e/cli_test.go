package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestPs runs `secretd ps` as docker's users would: a container name as an
// argument, -q, and each --filter, against containers on the engine.
func TestPs(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	d.mustCLI("a-value", "secret", "create", "a", "-")
	d.mustCLI("b-value", "secret", "create", "b", "-")
	one, two := d.ctrName("ps-one"), d.ctrName("ps-two")
	mustDocker(t, d.runArgs("a;b", []string{"-d", "--name", one}, sleeper)...)
	mustDocker(t, append([]string{"run", "-d", "--network", "none", "--label", d.label(), "--name", two},
		append(d.VolumeRunArgs("b", "/run/secrets"), image, "sh", "-c", sleeper)...)...)
	id := func(name string) string { return mustDocker(t, "inspect", "-f", "{{.Id}}", name)[:12] }
	volume := mustDocker(t, "inspect", "-f", `{{range .Mounts}}{{if eq .Destination "/run/secrets"}}{{.Name}}{{end}}{{end}}`, two)

	rows := func(args ...string) []string {
		t.Helper()
		out := d.mustCLI("", append([]string{"ps", "--format", "{{.Name}} {{.Secret}}"}, args...)...)
		lines := strings.Split(out, "\n")
		slices.Sort(lines)
		return lines
	}
	for _, c := range []struct {
		args []string
		want []string
	}{
		{nil, []string{one + " a", one + " b", two + " b"}},
		{[]string{one}, []string{one + " a", one + " b"}},
		{[]string{id(two)}, []string{two + " b"}},
		{[]string{"--filter", "container=" + two}, []string{two + " b"}},
		{[]string{"--filter", "secret=a"}, []string{one + " a"}},
		{[]string{"--filter", "volume=" + volume}, []string{two + " b"}},
		{[]string{"--filter", "secret=b", "--filter", "container=" + one}, []string{one + " b"}},
	} {
		if got := rows(c.args...); !slices.Equal(got, c.want) {
			t.Errorf("secretd ps %s: %q, want %q", strings.Join(c.args, " "), got, c.want)
		}
	}
	// -q prints each container once, as docker ps -q does: the same IDs.
	quiet := strings.Fields(d.mustCLI("", "ps", "-q"))
	slices.Sort(quiet)
	want := []string{id(one), id(two)}
	slices.Sort(want)
	if !slices.Equal(quiet, want) {
		t.Errorf("secretd ps -q = %q, want the containers' IDs %q", quiet, want)
	}
	if r := d.cli("", "ps", "nosuch-ps"); r.code != 1 || !strings.Contains(r.stderr, "no container holding secretd secrets is named nosuch-ps") {
		t.Errorf("secretd ps nosuch-ps: %s", r)
	}
	if r := d.cli("", "ps", "--filter", "image=x"); r.code != 1 || !strings.Contains(r.stderr, "invalid filter 'image': use container=, secret=, config= or volume=") {
		t.Errorf("secretd ps --filter image=x: %s", r)
	}

	// The shell's completion asks this daemon for the names.
	complete := func(args ...string) []string {
		out := d.mustCLI("", append([]string{"__complete"}, args...)...)
		lines := strings.Split(out, "\n")
		return lines[:len(lines)-1] // the directive
	}
	if got := complete("secret", "rm", ""); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("secret rm <TAB>: %q", got)
	}
	if got := complete("container", "update", ""); !slices.Equal(got, []string{one, two}) {
		t.Errorf("container update <TAB>: %q", got)
	}
}

// TestMakeInstall: after `make install` the quick start's commands are on
// the PATH, with their man pages and shell completion.
func TestMakeInstall(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/usr/bin/make"); err != nil {
		t.Skip("make not installed")
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	deployMake(t, dir, "DESTDIR="+root, "MANSRC="+filepath.Join(dir, "man"), "install")
	bin := filepath.Join(root, "usr", "local", "bin")
	// The shell looks secretd up on the PATH, as a pasted quick start does.
	r := runCmd(t, []string{"PATH=" + bin + ":" + os.Getenv("PATH")}, "", "sh", "-c", "command -v secretd && secretd --version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, filepath.Join(bin, "secretd")+"\nsecretd version ") {
		t.Errorf("secretd version from the installed PATH: %s", r)
	}
	// The daemon's and compose's commands are in the siblings, which the
	// installed secretd finds in PREFIX/libexec/secretd.
	for _, args := range []string{"daemon --help", "store migrate --help", "compose --help"} {
		r := runCmd(t, []string{"PATH=" + bin + ":" + os.Getenv("PATH")}, "", "sh", "-c", "secretd "+args)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage:\n  secretd "+strings.TrimSuffix(args, " --help")) || !strings.Contains(r.stdout, "Flags:") {
			t.Errorf("installed secretd %s: %s", args, r)
		}
	}
	for _, sib := range []string{"secretd-daemon", "secretd-compose"} {
		if fi, err := os.Stat(filepath.Join(root, "usr/local/libexec/secretd", sib)); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s not installed in libexec: %v", sib, err)
		}
	}
	for file, want := range map[string]string{
		"usr/local/share/man/man1/secretd-secret-create.1":       `.TH "SECRETD-SECRET-CREATE" "1"`,
		"usr/local/share/man/man1/secretd.1":                     `.TH "SECRETD" "1"`,
		"usr/local/share/bash-completion/completions/secretd":    "__start_secretd",
		"usr/local/share/zsh/site-functions/_secretd":            "#compdef secretd",
		"usr/local/share/fish/vendor_completions.d/secretd.fish": "complete -c secretd",
		"usr/local/lib/systemd/system/secretd.service":           "ExecStart=/usr/local/bin/secretd daemon",
	} {
		b, err := os.ReadFile(filepath.Join(root, file))
		if err != nil || !strings.Contains(string(b), want) {
			t.Errorf("%s: %v, want it to hold %q", file, err, want)
		}
	}
}
