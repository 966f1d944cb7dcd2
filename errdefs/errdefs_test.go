package errdefs_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/secretd/secretd/errdefs"
)

func TestErrorfKeepsMessageAndKind(t *testing.T) {
	err := errdefs.Errorf(errdefs.ErrExists, "secret '%s' already exists", "db")
	if got, want := err.Error(), "secret 'db' already exists"; got != want {
		t.Errorf("message %q, want %q (no kind prefix)", got, want)
	}
	if !errors.Is(err, errdefs.ErrExists) {
		t.Errorf("errors.Is(%v, ErrExists) is false", err)
	}
	if errors.Is(err, errdefs.ErrInUse) {
		t.Errorf("errors.Is(%v, ErrInUse) is true: kinds are distinct", err)
	}
	wrapped := fmt.Errorf("create: %w", err)
	if !errors.Is(wrapped, errdefs.ErrExists) {
		t.Errorf("kind lost through fmt.Errorf %%w")
	}
}

func TestNameAndHTTPStatus(t *testing.T) {
	for _, tt := range []struct {
		err    error
		name   string
		status int
	}{
		{errdefs.Errorf(errdefs.ErrInvalid, "bad"), "invalid", http.StatusBadRequest},
		{errdefs.Errorf(errdefs.ErrNotFound, "secret 'x' not found"), "not_found", http.StatusNotFound},
		{errdefs.ErrExists, "exists", http.StatusConflict},
		{fmt.Errorf("rm: %w", errdefs.ErrInUse), "in_use", http.StatusConflict},
		{errdefs.ErrLocked, "locked", http.StatusServiceUnavailable},
		{errdefs.ErrUnavailable, "unavailable", http.StatusServiceUnavailable},
		{errdefs.ErrBadKey, "bad_key", http.StatusBadRequest},
		{errdefs.ErrCorrupt, "corrupt", http.StatusInternalServerError},
		{errdefs.Errorf(errdefs.ErrForbidden, "only root names commands"), "forbidden", http.StatusForbidden},
		{fmt.Errorf("get: %w", context.DeadlineExceeded), "timeout", 0},
		{context.Canceled, "canceled", 0},
		{errors.New("disk on fire"), "other", 0},
		{nil, "other", 0},
	} {
		if got := errdefs.Name(tt.err); got != tt.name {
			t.Errorf("Name(%v) = %q, want %q", tt.err, got, tt.name)
		}
		code, ok := errdefs.HTTPStatus(tt.err)
		if ok != (tt.status != 0) || code != tt.status {
			t.Errorf("HTTPStatus(%v) = %d, %v; want %d", tt.err, code, ok, tt.status)
		}
	}
}

// An error of two kinds answers 400 when one is ErrInvalid, as the API did
// before the kinds moved here, while the metric label says locked first.
func TestSeveralKindsOrder(t *testing.T) {
	err := errors.Join(errdefs.ErrLocked, errdefs.ErrInvalid)
	if code, _ := errdefs.HTTPStatus(err); code != http.StatusBadRequest {
		t.Errorf("HTTPStatus = %d, want 400", code)
	}
	if got := errdefs.Name(err); got != "locked" {
		t.Errorf("Name = %q, want locked", got)
	}
}
