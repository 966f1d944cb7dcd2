// Package errdefs holds secretd's error kinds: the sentinels callers test
// with errors.Is, a constructor for errors of a kind with a message of their
// own, and the mapping of kinds to HTTP status codes and metric labels.
// It imports nothing of secretd, so any package can use it without
// depending on the store.
package errdefs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// Error kinds. The API maps them to HTTP status codes the way the Docker
// Engine does.
var (
	// ErrInvalid marks a request that can never succeed as written (400).
	ErrInvalid = errors.New("invalid argument")
	// ErrNotFound marks a missing secret or version (404).
	ErrNotFound = errors.New("not found")
	// ErrExists marks a create whose name is taken (409).
	ErrExists = errors.New("already exists")
	// ErrInUse marks a removal refused because a container uses the secret (409).
	ErrInUse = errors.New("in use")
	// ErrLocked marks a request that needs plaintext while the store is locked (503: 423 is not Docker's).
	ErrLocked = errors.New("secretd is locked: run 'secretd unlock'")
	// ErrUnavailable marks a request that depends on something not answering (503).
	ErrUnavailable = errors.New("unavailable")
	// ErrBadKey marks a wrong key file or unlock key (400).
	ErrBadKey = errors.New("wrong key")
	// ErrCorrupt marks a record that fails authentication: tampered or moved (500).
	ErrCorrupt = errors.New("record failed authentication")
	// ErrForbidden marks a request the caller may not make, whatever its
	// content: a non-root API user naming a command for the daemon to run (403).
	ErrForbidden = errors.New("forbidden")
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

// kinds lists every kind with its label and status, in the order an error
// that wraps several is classified: the first match wins.
var kinds = []struct {
	err    error
	name   string
	status int
}{
	{ErrLocked, "locked", http.StatusServiceUnavailable},
	{ErrNotFound, "not_found", http.StatusNotFound},
	{ErrInvalid, "invalid", http.StatusBadRequest},
	{ErrExists, "exists", http.StatusConflict},
	{ErrInUse, "in_use", http.StatusConflict},
	{ErrUnavailable, "unavailable", http.StatusServiceUnavailable},
	{ErrBadKey, "bad_key", http.StatusBadRequest},
	{ErrCorrupt, "corrupt", http.StatusInternalServerError},
	{ErrForbidden, "forbidden", http.StatusForbidden},
}

// Name labels err for metrics and logs: its kind ("not_found", "in_use", ...),
// "timeout" or "canceled" for a context error, else "other". The set is
// closed, so a label built from it cannot grow new series.
func Name(err error) string {
	if err == nil {
		return "other"
	}
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "other"
}

// statusOrder is the order HTTPStatus tries the kinds in: a request error
// that is also of another kind is the caller's to fix, so it answers 400.
var statusOrder = []error{ErrForbidden, ErrInvalid, ErrBadKey, ErrNotFound, ErrExists, ErrInUse, ErrLocked, ErrUnavailable, ErrCorrupt}

// HTTPStatus is the status code the Docker Engine would answer err with, and
// false when err is of no kind: the caller decides (its message may name
// internals, so it should not reach a client as is).
func HTTPStatus(err error) (int, bool) {
	if err == nil {
		return 0, false
	}
	for _, kind := range statusOrder {
		if errors.Is(err, kind) {
			for _, k := range kinds {
				if k.err == kind {
					return k.status, true
				}
			}
		}
	}
	return 0, false
}
