package server_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/swarm"

	"github.com/secretd/secretd/api"
)

// driverSpec is a create body for a shell-driver secret.
func driverSpec(name string, opts map[string]string, cache bool, refresh string) api.SecretCreateRequest {
	return api.SecretCreateRequest{
		SecretSpec: swarm.SecretSpec{Annotations: swarm.Annotations{Name: name}, Driver: &swarm.Driver{Name: "shell", Options: opts}},
		Cache:      cache, Refresh: refresh,
	}
}

// TestCreateFromSource: a shell-driver secret is created with no data;
// inspect and ls name the driver and its option keys, never an option's
// value; bad input is refused and stores nothing; update is refused.
func TestCreateFromSource(t *testing.T) {
	e := newEnv(t, envOpts{sources: true})
	token := string(e.canary("opt"))
	r := e.do("POST", "/v1.41/secrets/create", driverSpec("db", map[string]string{"lookup": "TOKEN=" + token + "; printf value"}, false, ""))
	if r.code != 201 {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	var sec api.Secret
	e.do("GET", "/v1.41/secrets/db", nil).decode(t, &sec)
	if sec.Source == nil || sec.Source.Driver != "shell" || len(sec.Source.OptionKeys) != 1 || sec.Source.OptionKeys[0] != "lookup" ||
		sec.Spec.Driver == nil || sec.Spec.Driver.Name != "shell" || len(sec.Spec.Driver.Options) != 0 || sec.CurrentVersion != 0 {
		t.Errorf("inspect: %+v (source %+v)", sec, sec.Source)
	}
	if r := e.do("GET", "/secretd/secrets", nil); r.code != 200 || !strings.Contains(string(r.body), "shell (lookup)") {
		t.Errorf("table: %d %s", r.code, r.body)
	}
	// --cache keeps the value fetched at create as version 1.
	if r := e.do("POST", "/v1.41/secrets/create", driverSpec("kept", map[string]string{"lookup": "printf v"}, true, "")); r.code != 201 {
		t.Fatalf("create --cache: %d %s", r.code, r.body)
	}
	e.do("GET", "/v1.41/secrets/kept", nil).decode(t, &sec)
	if sec.CurrentVersion != 1 || !sec.Source.Cache {
		t.Errorf("a --cache secret after create: version %d, source %+v", sec.CurrentVersion, sec.Source)
	}

	for _, c := range []struct {
		name string
		body any
		msg  string
	}{
		{"failing lookup", driverSpec("bad1", map[string]string{"lookup": "echo nope >&2; exit 3"}, false, ""), "~the source failed (exit status 3): see the daemon log"},
		{"unknown option", driverSpec("bad2", map[string]string{"lookup": "printf v", "looup": "x"}, false, ""), "~unknown shell driver option \"looup\""},
		{"refresh too short", driverSpec("bad3", map[string]string{"lookup": "printf v"}, false, "10ms"), "~must be at least 1s"},
		{"refresh not a duration", driverSpec("bad4", map[string]string{"lookup": "printf v"}, false, "often"), "~invalid --refresh"},
		{"bad name", driverSpec("bad name", map[string]string{"lookup": "printf v"}, false, ""), msgBadName},
		{"cache without driver", api.SecretCreateRequest{SecretSpec: swarm.SecretSpec{Annotations: swarm.Annotations{Name: "bad5"}, Data: []byte("x")}, Cache: true}, "~give --driver too"},
	} {
		t.Logf("case: %s", c.name)
		e.refused("POST", "/v1.41/secrets/create", c.body, 400, c.msg)
	}
	var list []api.Secret
	e.do("GET", "/v1.41/secrets", nil).decode(t, &list)
	if len(list) != 2 {
		t.Errorf("refused creates stored secrets: %d listed, want 2", len(list))
	}
	e.refused("POST", "/secretd/secrets/db/update", api.SecretUpdateRequest{Data: e.canary("u")}, 400, "~takes its value from secret driver \"shell\"")
}

// TestCreateStoredInSource is Podman's shell-driver contract: a value given
// at create goes to the store command (stdin, SECRET_ID) and reads back
// through lookup; the store keeps no copy; rm runs delete. A driver that
// cannot keep a value, a failing store and a value that does not read back
// are refused and leave nothing, in secretd or in the source.
func TestCreateStoredInSource(t *testing.T) {
	e := newEnv(t, envOpts{sources: true})
	dir := t.TempDir()
	podman := func(lookup string) map[string]string {
		return map[string]string{
			"lookup": lookup,
			"store":  `umask 077 && cat > "` + dir + `/$SECRET_ID"`,
			"delete": `rm -f "` + dir + `/$SECRET_ID"`,
		}
	}
	value := e.canary("stored")
	req := driverSpec("kept", podman(`cat "`+dir+`/$SECRET_ID"`), false, "")
	req.Data = value
	r := e.do("POST", "/v1.41/secrets/create", req)
	if r.code != 201 {
		t.Fatalf("create with data: %d %s", r.code, r.body)
	}
	var created swarm.SecretCreateResponse
	r.decode(t, &created)
	if got, err := os.ReadFile(filepath.Join(dir, created.ID)); err != nil || !bytes.Equal(got, value) {
		t.Fatalf("the store command kept %q (%v), want the value given", got, err)
	}
	var sec api.Secret
	e.do("GET", "/v1.41/secrets/kept", nil).decode(t, &sec)
	if sec.CurrentVersion != 0 || sec.Source == nil || sec.Source.Driver != "shell" {
		t.Errorf("inspect: version %d, source %+v: want no stored version, the shell driver", sec.CurrentVersion, sec.Source)
	}
	if r := e.do("DELETE", "/v1.41/secrets/kept", nil); r.code != 204 {
		t.Fatalf("rm: %d %s", r.code, r.body)
	}
	if _, err := os.Stat(filepath.Join(dir, created.ID)); !os.IsNotExist(err) {
		t.Errorf("after rm the source still holds the value (%v): the delete command did not run", err)
	}

	for _, c := range []struct {
		name string
		opts map[string]string
		msg  string
	}{
		{"no store command", map[string]string{"lookup": "printf v"}, "~cannot store a value"},
		{"store fails", map[string]string{"lookup": "printf v", "store": "echo full >&2; exit 4", "delete": "true"}, "~the source failed (exit status 4): see the daemon log"},
		{"does not read back", podman("echo gone >&2; exit 5"), "~the source failed (exit status 5): see the daemon log"},
	} {
		t.Logf("case: %s", c.name)
		req := driverSpec("bad", c.opts, false, "")
		req.Data = e.canary("bad")
		e.refused("POST", "/v1.41/secrets/create", req, 400, c.msg)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("refused creates left %d values in the source", len(left))
	}

	// A delete that fails keeps the secret: rm can be tried again.
	req = driverSpec("stuck", map[string]string{"lookup": "printf v", "store": "cat > /dev/null", "delete": "echo locked >&2; exit 6"}, false, "")
	req.Data = e.canary("stuck")
	if r := e.do("POST", "/v1.41/secrets/create", req); r.code != 201 {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	e.refused("DELETE", "/v1.41/secrets/stuck", nil, 400, "~could not be deleted from its source")
	if r := e.do("GET", "/v1.41/secrets/stuck", nil); r.code != 200 {
		t.Errorf("a failed delete removed the secret: %d", r.code)
	}
}
