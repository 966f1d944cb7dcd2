package e2e

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// tree lists every path under root with its kind, as a user comparing
// `find` before and after would.
func tree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out = append(out, rel+" "+d.Type().String())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMakeUninstall: `make uninstall` removes what `make install` put
// under DESTDIR/PREFIX and the directories it created, and nothing that
// was there before: not a directory another package made (zsh's
// site-functions), not a file of someone else's in a directory install
// created. `make install` says that bash completion needs bash-completion,
// and with that package the installed completion completes.
func TestMakeUninstall(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/usr/bin/make"); err != nil {
		t.Skip("make not installed")
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	// What a Debian /usr/local has, and what a zsh package adds.
	for _, d := range []string{"usr/local/bin", "usr/local/share/man", "usr/local/share/zsh/site-functions"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(root, "usr/local/bin/other-tool"), "x")
	before := tree(t, root)
	args := []string{"DESTDIR=" + root, "MANSRC=" + filepath.Join(dir, "man")}

	out := deployMake(t, dir, append(args, "BASHCOMPLETION="+filepath.Join(dir, "no-bash-completion"), "install")...)
	if !strings.Contains(out, "bash completion needs the bash-completion package: apt-get install bash-completion") {
		t.Errorf("make install without bash-completion does not say it is needed:\n%s", out)
	}
	listed, err := os.ReadFile(filepath.Join(root, "usr/local/share/secretd/installed-dirs"))
	if err != nil {
		t.Fatal(err)
	}
	dirs := strings.Fields(string(listed))
	for _, want := range []string{"/usr/local/lib/systemd/system", "/usr/local/share/man/man1", "/usr/local/share/bash-completion/completions"} {
		if !slices.Contains(dirs, want) {
			t.Errorf("installed-dirs %q lacks %s, which install created", dirs, want)
		}
	}
	for _, there := range []string{"/usr/local/bin", "/usr/local/share/man", "/usr/local/share/zsh/site-functions"} {
		if slices.Contains(dirs, there) {
			t.Errorf("installed-dirs lists %s, which was there before", there)
		}
	}

	// A second install creates nothing new and keeps the list.
	deployMake(t, dir, append(args, "install")...)
	if again, _ := os.ReadFile(filepath.Join(root, "usr/local/share/secretd/installed-dirs")); string(again) != string(listed) {
		t.Errorf("a second install changed installed-dirs:\n%s\nwas:\n%s", again, listed)
	}

	bashCompletion(t, root)

	deployMake(t, dir, append(args, "uninstall")...)
	if after := tree(t, root); !slices.Equal(after, before) {
		t.Errorf("after install and uninstall the tree is\n%s\nwant as before\n%s", strings.Join(after, "\n"), strings.Join(before, "\n"))
	}

	// A directory install created that now holds someone else's file stays,
	// with the file.
	deployMake(t, dir, append(args, "install")...)
	foreign := filepath.Join(root, "usr/local/lib/systemd/system/other.service")
	writeFile(t, foreign, "[Unit]\n")
	deployMake(t, dir, append(args, "uninstall")...)
	if _, err := os.Stat(foreign); err != nil {
		t.Errorf("uninstall removed another unit: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "usr/local/share/man/man1")); !os.IsNotExist(err) {
		t.Errorf("uninstall left the empty man1 it created: %v", err)
	}
}

// bashCompletion sources the installed completion after bash-completion's
// loader and completes `secretd sec`, as a user's TAB does.
func bashCompletion(t *testing.T, root string) {
	t.Helper()
	const loader = "/usr/share/bash-completion/bash_completion"
	if _, err := os.Stat(loader); err != nil {
		t.Logf("bash completion not tried: %s missing (make deps installs bash-completion)", loader)
		return
	}
	script := `. ` + loader + `
. "$ROOT/usr/local/share/bash-completion/completions/secretd"
COMP_WORDS=(secretd sec); COMP_CWORD=1; COMP_LINE='secretd sec'; COMP_POINT=${#COMP_LINE}
__start_secretd secretd sec secretd
printf '%s\n' "${COMPREPLY[@]}"`
	r := runCmd(t, []string{"ROOT=" + root, "PATH=" + filepath.Join(root, "usr/local/bin") + ":" + os.Getenv("PATH")}, "", "bash", "-c", script)
	// Outside a real TAB, compopt complains; any other message is a failure.
	var stderr []string
	for _, l := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		if l != "" && !strings.HasSuffix(l, "compopt: not currently executing completion function") {
			stderr = append(stderr, l)
		}
	}
	if r.code != 0 || strings.TrimSpace(r.stdout) != "secret" || len(stderr) > 0 {
		t.Errorf("bash completion of 'secretd sec': %s", r)
	}
}
