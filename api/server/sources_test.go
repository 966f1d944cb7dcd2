package server_test

import (
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
		{"failing lookup", driverSpec("bad1", map[string]string{"lookup": "echo nope >&2; exit 3"}, false, ""), "~exited with status 3: nope"},
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
