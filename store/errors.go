package store

import (
	"errors"
	"fmt"
)

// Error kinds. Callers test them with errors.Is; the API maps them to HTTP
// status codes the way the Docker Engine does.
var (
	// ErrInvalid marks a request that can never succeed as written (400).
	ErrInvalid = errors.New("invalid argument")
	// ErrNotFound marks a missing secret or version (404).
	ErrNotFound = errors.New("not found")
	// ErrExists marks a create whose name is taken (409).
	ErrExists = errors.New("already exists")
	// ErrInUse marks a removal refused because a container uses the secret (409).
	ErrInUse = errors.New("in use")
	// ErrLocked marks a request that needs plaintext while the store is locked (423 is not Docker's; 503 is used).
	ErrLocked = errors.New("secretd is locked: run 'secretd unlock'")
	// ErrUnavailable marks a request that depends on something not answering (503).
	ErrUnavailable = errors.New("unavailable")
	// ErrBadKey marks a wrong key file or unlock key.
	ErrBadKey = errors.New("wrong key")
	// ErrCorrupt marks a record that fails authentication: tampered or moved.
	ErrCorrupt = errors.New("record failed authentication")
)

// kindError carries a message of its own and a kind for errors.Is, so the
// text a user sees is exactly Swarm's ("secret x already exists") and not
// "already exists: secret x already exists".
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// Errorf returns an error of the given kind with a message of its own.
func Errorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, msg: fmt.Sprintf(format, args...)}
}
