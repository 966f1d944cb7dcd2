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
