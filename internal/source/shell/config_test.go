package shell_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/secretd/secretd/internal/source/shell"
)

func TestParseConfig(t *testing.T) {
	text := `
# pass, with its store under /srv
lookup = pass show secretd/$SECRET_NAME
list=pass ls secretd
store = pass insert -m secretd/$SECRET_NAME
delete = pass rm -f secretd/$SECRET_NAME
timeout = 30
env = PASSWORD_STORE_DIR=/srv/pass
env = GNUPGHOME
secret-commands = deny
`
	cfg, err := shell.ParseConfig(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	want := shell.Config{
		Lookup:             "pass show secretd/$SECRET_NAME",
		List:               "pass ls secretd",
		Store:              "pass insert -m secretd/$SECRET_NAME",
		Delete:             "pass rm -f secretd/$SECRET_NAME",
		Timeout:            30 * time.Second,
		Env:                []string{"PASSWORD_STORE_DIR=/srv/pass", "GNUPGHOME"},
		DenySecretCommands: true,
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("parsed\n%+v\nwant\n%+v", cfg, want)
	}
}

func TestParseConfigErrors(t *testing.T) {
	cases := []struct{ text, want string }{
		{"lookup pass show x", "line 1: want key = value"},
		{"lookup = a\nlookup = b", "line 2: lookup is set twice"},
		{"lokup = a", `line 1: unknown key "lokup"`},
		{"timeout = soon", `line 1: timeout "soon" is not a duration`},
		{"timeout = 10m", "out of range"},
		{"env = 1BAD=x", "line 1: env wants NAME or NAME=VALUE"},
		{"env = ", "line 1: env wants NAME or NAME=VALUE"},
		{"secret-commands = maybe", `secret-commands is allow or deny, not "maybe"`},
	}
	for _, c := range cases {
		_, err := shell.ParseConfig(strings.NewReader(c.text))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.text, err, c.want)
		}
	}
}

func TestLoadConfig(t *testing.T) {
	cfg, err := shell.LoadConfig(filepath.Join(t.TempDir(), "absent.conf"))
	if err != nil || !reflect.DeepEqual(cfg, shell.Config{}) {
		t.Errorf("a missing file: %+v, %v; want an empty configuration", cfg, err)
	}
	path := filepath.Join(t.TempDir(), "shell-driver.conf")
	if err := os.WriteFile(path, []byte("lookup = vault kv get -field=x -token=CANARY-tok\nbogus\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = shell.LoadConfig(path)
	if err == nil || !strings.Contains(err.Error(), path+": line 2: want key = value") {
		t.Errorf("bad file: %v", err)
	}
	if strings.Contains(err.Error(), "CANARY") {
		t.Errorf("the error shows a command: %v", err)
	}
}

// TestLoadConfigRootOnly: the configuration's commands run as root for
// every API user, so a file or directory another user owns or may write
// is refused: whoever could change it would choose what root runs.
func TestLoadConfigRootOnly(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the file away")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "shell-driver.conf")
	if err := os.WriteFile(path, []byte("lookup = printf x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := shell.LoadConfig(path); err != nil {
		t.Fatalf("a root-owned 0644 file: %v", err)
	}
	for _, c := range []struct {
		name string
		prep func() error
		want string
	}{
		{"group-writable", func() error { return os.Chmod(path, 0o664) }, "has mode 0664: its commands run as root, so only root may write it"},
		{"world-writable", func() error { return os.Chmod(path, 0o646) }, "has mode 0646"},
		{"another user's", func() error { return os.Chown(path, 65534, 0) }, "is owned by uid 65534"},
		{"in a world-writable directory", func() error { return os.Chmod(dir, 0o777) }, "the directory of the shell driver configuration " + dir + " has mode 0777"},
		{"in another user's directory", func() error { return os.Chown(dir, 65534, 65534) }, "is owned by uid 65534"},
	} {
		if err := c.prep(); err != nil {
			t.Fatal(err)
		}
		_, err := shell.LoadConfig(path)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
		os.Chmod(path, 0o644)
		os.Chown(path, 0, 0)
		os.Chmod(dir, 0o700)
		os.Chown(dir, 0, 0)
	}
	if _, err := shell.LoadConfig(dir); err == nil || !strings.Contains(err.Error(), "is not a regular file") {
		t.Errorf("a directory: %v", err)
	}
}
