package daemon

import (
	"sync"

	"github.com/secretd/secretd/internal/store"
)

// rotations keeps, per secret, how the last rotation on this host went,
// so the API can answer `secret update` with the containers a new version
// did not reach. The store runs the rotation in the updating goroutine,
// before its Update returns; the API asks right after.
type rotations struct {
	mu     sync.Mutex
	failed map[string]failedRotation // by secret ID; only failures are kept
}

type failedRotation struct {
	version int
	err     error
}

// record keeps err as the outcome of pushing sec's current version; a
// success forgets any earlier failure, so the map holds only secrets whose
// last rotation failed.
func (r *rotations) record(sec store.Secret, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		delete(r.failed, sec.ID)
		return
	}
	if r.failed == nil {
		r.failed = make(map[string]failedRotation)
	}
	r.failed[sec.ID] = failedRotation{version: sec.Current, err: err}
}

// RotationError returns why version of the secret with id did not reach
// every container on this host, or nil. A newer version's outcome replaces
// an older one's: once a later update reached everyone, the earlier one no
// longer matters.
func (r *rotations) RotationError(id string, version int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f, ok := r.failed[id]; ok && f.version == version {
		return f.err
	}
	return nil
}
