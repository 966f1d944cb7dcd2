package daemon

import (
	"errors"
	"testing"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/internal/store"
)

func TestRotationsKeepTheLastFailure(t *testing.T) {
	var r rotations
	fail := errors.New("did not reach web")
	r.record(store.Secret{ID: "a", Current: 2}, api.Rotation{Version: 2}, fail)
	if err := r.RotationError("a", 2); err != fail {
		t.Errorf("version 2: %v, want its failure", err)
	}
	if err := r.RotationError("a", 1); err != nil {
		t.Errorf("version 1: %v, want nil", err)
	}
	if err := r.RotationError("b", 2); err != nil {
		t.Errorf("another secret: %v, want nil", err)
	}
	r.record(store.Secret{ID: "a", Current: 3}, api.Rotation{Version: 3, Updated: 1}, nil)
	if err := r.RotationError("a", 2); err != nil || len(r.last) != 0 {
		t.Errorf("after a later rotation reached everyone: %v, %d kept", err, len(r.last))
	}
}

// A rotation that left a container for its next start is kept and told,
// though it failed nowhere; one with nothing to tell is forgotten.
func TestRotationsKeepContainersLeftForLater(t *testing.T) {
	var r rotations
	later := api.Rotation{Version: 2, Containers: []api.ContainerRotation{{ContainerName: "nginx", Gets: api.RotationNextStart}}}
	r.record(store.Secret{ID: "a", Current: 2}, later, nil)
	if got := r.Rotated("a", 2); got == nil || len(got.Containers) != 1 || got.Containers[0].ContainerName != "nginx" {
		t.Errorf("version 2: %+v, want nginx for later", got)
	}
	if err := r.RotationError("a", 2); err != nil {
		t.Errorf("version 2 failed nowhere: %v", err)
	}
	if got := r.Rotated("a", 1); got != nil {
		t.Errorf("version 1: %+v, want nothing", got)
	}
	r.record(store.Secret{ID: "a", Current: 3}, api.Rotation{Version: 3, Updated: 2}, nil)
	if got := r.Rotated("a", 3); got != nil || len(r.last) != 0 {
		t.Errorf("version 3 reached everyone in place: %+v, %d kept", got, len(r.last))
	}
}
