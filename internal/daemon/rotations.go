package daemon

import (
	"sync"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/internal/store"
)

// rotations keeps, per secret, how the last rotation on this host went,
// so the API can answer `secret update` with the containers a new version
// did not reach, or reaches only at their next start. The store runs the
// rotation in the updating goroutine, before its Update returns; the API
// asks right after.
type rotations struct {
	mu sync.Mutex
	// last holds, by secret ID, only rotations that failed somewhere or
	// left a container for later: the others have nothing to tell.
	last map[string]rotationOutcome
}

type rotationOutcome struct {
	version int
	rot     api.Rotation
	err     error
}

// record keeps rot and err as the outcome of pushing sec's current
// version; one with nothing to tell forgets any earlier outcome.
func (r *rotations) record(sec store.Secret, rot api.Rotation, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil && len(rot.Containers) == 0 {
		delete(r.last, sec.ID)
		return
	}
	if r.last == nil {
		r.last = make(map[string]rotationOutcome)
	}
	r.last[sec.ID] = rotationOutcome{version: sec.Current, rot: rot, err: err}
}

// RotationError returns why version of the secret with id did not reach
// every container on this host, or nil. A newer version's outcome replaces
// an older one's: once a later update reached everyone, the earlier one no
// longer matters.
func (r *rotations) RotationError(id string, version int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if o, ok := r.last[id]; ok && o.version == version {
		return o.err
	}
	return nil
}

// Rotated returns what version of the secret with id did on this host's
// containers when it left some for later; nil when it has nothing to tell.
func (r *rotations) Rotated(id string, version int) *api.Rotation {
	r.mu.Lock()
	defer r.mu.Unlock()
	if o, ok := r.last[id]; ok && o.version == version {
		rot := o.rot
		return &rot
	}
	return nil
}
