package server_test

import (
	"strings"
	"testing"

	"github.com/secretd/secretd/api"
)

// TestIfChangedReportsFailedRotation: re-sending the current data after
// the update that stored it failed to reach a container (what `secretd
// compose up` run again does) reports that failure too, not 200: the
// container still reads the previous version.
func TestIfChangedReportsFailedRotation(t *testing.T) {
	e := newEnv(t, envOpts{rotations: failingRotations{version: 2}})
	e.create("rotated", nil, e.canary("v1"))
	v2 := e.canary("v2")
	if r := e.do("POST", "/secretd/secrets/rotated/update", api.SecretUpdateRequest{Data: v2, IfChanged: true}); r.code < 500 {
		t.Fatalf("the update that did not reach a container answered %d %s", r.code, r.body)
	}
	r := e.do("POST", "/secretd/secrets/rotated/update", api.SecretUpdateRequest{Data: v2, IfChanged: true})
	if r.code < 500 {
		t.Fatalf("the same data again, after a failed rotation, answered %d %s", r.code, r.body)
	}
	if msg := r.message(t); !strings.Contains(msg, "did not reach 1 container") {
		t.Errorf("message %q does not say the version did not reach the container", msg)
	}
	if got := e.inspect("rotated").CurrentVersion; got != 2 {
		t.Errorf("the same data stored a new version: %d, want 2", got)
	}
}
