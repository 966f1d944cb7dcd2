package store

import "github.com/secretd/secretd/errdefs"

// Error kinds, kept as aliases of package errdefs so callers that test
// store.ErrX and errdefs.ErrX with errors.Is agree: they are the same values.
// New code outside the store should use errdefs.
var (
	// ErrInvalid is errdefs.ErrInvalid.
	ErrInvalid = errdefs.ErrInvalid
	// ErrNotFound is errdefs.ErrNotFound.
	ErrNotFound = errdefs.ErrNotFound
	// ErrExists is errdefs.ErrExists.
	ErrExists = errdefs.ErrExists
	// ErrInUse is errdefs.ErrInUse.
	ErrInUse = errdefs.ErrInUse
	// ErrLocked is errdefs.ErrLocked.
	ErrLocked = errdefs.ErrLocked
	// ErrUnavailable is errdefs.ErrUnavailable.
	ErrUnavailable = errdefs.ErrUnavailable
	// ErrBadKey is errdefs.ErrBadKey.
	ErrBadKey = errdefs.ErrBadKey
	// ErrCorrupt is errdefs.ErrCorrupt.
	ErrCorrupt = errdefs.ErrCorrupt
)

// Errorf returns an error of the given kind with a message of its own; it is
// errdefs.Errorf.
func Errorf(kind error, format string, args ...any) error {
	return errdefs.Errorf(kind, format, args...)
}
