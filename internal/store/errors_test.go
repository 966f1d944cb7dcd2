package store_test

import (
	"errors"
	"testing"

	"github.com/secretd/secretd/errdefs"
	"github.com/secretd/secretd/internal/store"
)

// Code that still tests store.ErrX must agree with code that tests
// errdefs.ErrX, whichever package made the error.
func TestStoreKindsAreErrdefsKinds(t *testing.T) {
	pairs := []struct{ store, errdefs error }{
		{store.ErrInvalid, errdefs.ErrInvalid},
		{store.ErrNotFound, errdefs.ErrNotFound},
		{store.ErrExists, errdefs.ErrExists},
		{store.ErrInUse, errdefs.ErrInUse},
		{store.ErrLocked, errdefs.ErrLocked},
		{store.ErrUnavailable, errdefs.ErrUnavailable},
		{store.ErrBadKey, errdefs.ErrBadKey},
		{store.ErrCorrupt, errdefs.ErrCorrupt},
	}
	for _, p := range pairs {
		if !errors.Is(store.Errorf(p.store, "x"), p.errdefs) || !errors.Is(errdefs.Errorf(p.errdefs, "x"), p.store) {
			t.Errorf("store %q and errdefs %q are not the same kind", p.store, p.errdefs)
		}
	}
}
