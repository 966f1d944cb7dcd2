package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/secretd/secretd/api"
)

// Unlock opens an autolocked store.
func (c *Client) Unlock(ctx context.Context, key string) error {
	return c.do(ctx, http.MethodPost, "/secretd/unlock", nil, api.UnlockRequest{UnlockKey: key}, nil)
}

// UnlockKey returns the current unlock key.
func (c *Client) UnlockKey(ctx context.Context) (string, error) {
	var out api.UnlockKeyResponse
	err := c.do(ctx, http.MethodGet, "/secretd/unlock-key", nil, nil, &out)
	return out.UnlockKey, err
}

// RotateUnlockKey replaces the unlock key and returns the new one.
func (c *Client) RotateUnlockKey(ctx context.Context) (string, error) {
	var out api.UnlockKeyResponse
	err := c.do(ctx, http.MethodPost, "/secretd/unlock-key/rotate", nil, nil, &out)
	return out.UnlockKey, err
}

// RotateKey replaces the KEK and returns its generation.
func (c *Client) RotateKey(ctx context.Context) (int, error) {
	var out api.KeyRotateResponse
	err := c.do(ctx, http.MethodPost, "/secretd/key/rotate", nil, nil, &out)
	return out.Generation, err
}

// Tasks returns which containers hold which secrets.
func (c *Client) Tasks(ctx context.Context) ([]api.Task, error) {
	var out []api.Task
	err := c.do(ctx, http.MethodGet, "/secretd/tasks", nil, nil, &out)
	return out, err
}

// Status returns the daemon's state.
func (c *Client) Status(ctx context.Context) (api.Status, error) {
	var out api.Status
	err := c.do(ctx, http.MethodGet, "/secretd/status", nil, nil, &out)
	return out, err
}

// ContainerUpdate grants (SecretAdd: declaration entries) and revokes
// (SecretRm: secret names) secrets of a container's volumes, live.
func (c *Client) ContainerUpdate(ctx context.Context, ref string, req api.ContainerUpdateRequest) (api.Task, error) {
	var out api.Task
	err := c.do(ctx, http.MethodPost, "/secretd/containers/"+url.PathEscape(ref)+"/update", nil, req, &out)
	return out, err
}
