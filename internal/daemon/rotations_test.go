package daemon

import (
	"errors"
	"testing"

	"github.com/secretd/secretd/internal/store"
)

func TestRotationsKeepTheLastFailure(t *testing.T) {
	var r rotations
	fail := errors.New("did not reach web")
	r.record(store.Secret{ID: "a", Current: 2}, fail)
	if err := r.RotationError("a", 2); err != fail {
		t.Errorf("version 2: %v, want its failure", err)
	}
	if err := r.RotationError("a", 1); err != nil {
		t.Errorf("version 1: %v, want nil", err)
	}
	if err := r.RotationError("b", 2); err != nil {
		t.Errorf("another secret: %v, want nil", err)
	}
	r.record(store.Secret{ID: "a", Current: 3}, nil)
	if err := r.RotationError("a", 2); err != nil || len(r.failed) != 0 {
		t.Errorf("after a later rotation reached everyone: %v, %d kept", err, len(r.failed))
	}
}
