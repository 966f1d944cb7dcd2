// Package fakeclient is a cli.APIClient for unit tests of command bodies, as
// docker/cli's fakeClient: each method calls the function a test set, and a
// method the test did not expect fails the call with an error naming it.
package fakeclient

import (
	"context"
	"fmt"

	"github.com/docker/docker/api/types/filters"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/api/client"
	"github.com/secretd/secretd/cmd/secretd/cli"
)

// Client answers each API call with its Func field of the same name.
type Client struct {
	SecretCreateFunc           func(ctx context.Context, name string, labels map[string]string, data []byte) (string, error)
	SecretCreateFromSourceFunc func(ctx context.Context, name string, labels map[string]string, src client.SourceSpec) (string, error)
	SecretListFunc             func(ctx context.Context, f filters.Args) ([]api.Secret, error)
	SecretTableFunc            func(ctx context.Context, f filters.Args) (api.SecretTable, error)
	SecretInspectFunc          func(ctx context.Context, ref string) (api.Secret, error)
	SecretRemoveFunc           func(ctx context.Context, ref string) error
	SecretUpdateFunc           func(ctx context.Context, ref string, data []byte, keep int) (api.Secret, error)
	SecretUpdateIfChangedFunc  func(ctx context.Context, ref string, data []byte) (api.Secret, error)
	SecretCreateTemplateFunc   func(ctx context.Context, name string, labels map[string]string, data []byte, templateDriver string) (string, error)
	ConfigCreateFunc           func(ctx context.Context, name string, labels map[string]string, data []byte, templateDriver string) (string, error)
	ConfigTableFunc            func(ctx context.Context, f filters.Args) (api.SecretTable, error)
	ConfigInspectFunc          func(ctx context.Context, ref string) (api.Config, error)
	ConfigRemoveFunc           func(ctx context.Context, ref string) error
	ConfigUpdateFunc           func(ctx context.Context, ref string, data []byte, keep int) (api.Config, error)
	ConfigUpdateIfChangedFunc  func(ctx context.Context, ref string, data []byte) (api.Config, error)
	UnlockFunc                 func(ctx context.Context, key string) error
	UnlockKeyFunc              func(ctx context.Context) (string, error)
	RotateUnlockKeyFunc        func(ctx context.Context) (string, error)
	RotateKeyFunc              func(ctx context.Context) (int, error)
	TasksFunc                  func(ctx context.Context) ([]api.Task, error)
	StatusFunc                 func(ctx context.Context) (api.Status, error)
	ContainerUpdateFunc        func(ctx context.Context, ref string, req api.ContainerUpdateRequest) (api.Task, error)
}

var _ cli.APIClient = (*Client)(nil)

// unexpected is the error of a call the test set no function for.
func unexpected(method string) error {
	return fmt.Errorf("fakeclient: unexpected call to %s", method)
}

// SecretCreate calls SecretCreateFunc.
func (c *Client) SecretCreate(ctx context.Context, name string, labels map[string]string, data []byte) (string, error) {
	if c.SecretCreateFunc == nil {
		return "", unexpected("SecretCreate")
	}
	return c.SecretCreateFunc(ctx, name, labels, data)
}

// SecretCreateFromSource calls SecretCreateFromSourceFunc.
func (c *Client) SecretCreateFromSource(ctx context.Context, name string, labels map[string]string, src client.SourceSpec) (string, error) {
	if c.SecretCreateFromSourceFunc == nil {
		return "", unexpected("SecretCreateFromSource")
	}
	return c.SecretCreateFromSourceFunc(ctx, name, labels, src)
}

// SecretList calls SecretListFunc.
func (c *Client) SecretList(ctx context.Context, f filters.Args) ([]api.Secret, error) {
	if c.SecretListFunc == nil {
		return nil, unexpected("SecretList")
	}
	return c.SecretListFunc(ctx, f)
}

// SecretTable calls SecretTableFunc.
func (c *Client) SecretTable(ctx context.Context, f filters.Args) (api.SecretTable, error) {
	if c.SecretTableFunc == nil {
		return api.SecretTable{}, unexpected("SecretTable")
	}
	return c.SecretTableFunc(ctx, f)
}

// SecretInspect calls SecretInspectFunc.
func (c *Client) SecretInspect(ctx context.Context, ref string) (api.Secret, error) {
	if c.SecretInspectFunc == nil {
		return api.Secret{}, unexpected("SecretInspect")
	}
	return c.SecretInspectFunc(ctx, ref)
}

// SecretRemove calls SecretRemoveFunc.
func (c *Client) SecretRemove(ctx context.Context, ref string) error {
	if c.SecretRemoveFunc == nil {
		return unexpected("SecretRemove")
	}
	return c.SecretRemoveFunc(ctx, ref)
}

// SecretUpdate calls SecretUpdateFunc.
func (c *Client) SecretUpdate(ctx context.Context, ref string, data []byte, keep int) (api.Secret, error) {
	if c.SecretUpdateFunc == nil {
		return api.Secret{}, unexpected("SecretUpdate")
	}
	return c.SecretUpdateFunc(ctx, ref, data, keep)
}

// SecretUpdateIfChanged calls SecretUpdateIfChangedFunc.
func (c *Client) SecretUpdateIfChanged(ctx context.Context, ref string, data []byte) (api.Secret, error) {
	if c.SecretUpdateIfChangedFunc == nil {
		return api.Secret{}, unexpected("SecretUpdateIfChanged")
	}
	return c.SecretUpdateIfChangedFunc(ctx, ref, data)
}

// Unlock calls UnlockFunc.
func (c *Client) Unlock(ctx context.Context, key string) error {
	if c.UnlockFunc == nil {
		return unexpected("Unlock")
	}
	return c.UnlockFunc(ctx, key)
}

// UnlockKey calls UnlockKeyFunc.
func (c *Client) UnlockKey(ctx context.Context) (string, error) {
	if c.UnlockKeyFunc == nil {
		return "", unexpected("UnlockKey")
	}
	return c.UnlockKeyFunc(ctx)
}

// RotateUnlockKey calls RotateUnlockKeyFunc.
func (c *Client) RotateUnlockKey(ctx context.Context) (string, error) {
	if c.RotateUnlockKeyFunc == nil {
		return "", unexpected("RotateUnlockKey")
	}
	return c.RotateUnlockKeyFunc(ctx)
}

// RotateKey calls RotateKeyFunc.
func (c *Client) RotateKey(ctx context.Context) (int, error) {
	if c.RotateKeyFunc == nil {
		return 0, unexpected("RotateKey")
	}
	return c.RotateKeyFunc(ctx)
}

// Tasks calls TasksFunc.
func (c *Client) Tasks(ctx context.Context) ([]api.Task, error) {
	if c.TasksFunc == nil {
		return nil, unexpected("Tasks")
	}
	return c.TasksFunc(ctx)
}

// Status calls StatusFunc.
func (c *Client) Status(ctx context.Context) (api.Status, error) {
	if c.StatusFunc == nil {
		return api.Status{}, unexpected("Status")
	}
	return c.StatusFunc(ctx)
}

// ContainerUpdate calls ContainerUpdateFunc.
func (c *Client) ContainerUpdate(ctx context.Context, ref string, req api.ContainerUpdateRequest) (api.Task, error) {
	if c.ContainerUpdateFunc == nil {
		return api.Task{}, unexpected("ContainerUpdate")
	}
	return c.ContainerUpdateFunc(ctx, ref, req)
}

// SecretCreateTemplate calls SecretCreateTemplateFunc.
func (c *Client) SecretCreateTemplate(ctx context.Context, name string, labels map[string]string, data []byte, templateDriver string) (string, error) {
	if c.SecretCreateTemplateFunc == nil {
		return "", unexpected("SecretCreateTemplate")
	}
	return c.SecretCreateTemplateFunc(ctx, name, labels, data, templateDriver)
}

// ConfigCreate calls ConfigCreateFunc.
func (c *Client) ConfigCreate(ctx context.Context, name string, labels map[string]string, data []byte, templateDriver string) (string, error) {
	if c.ConfigCreateFunc == nil {
		return "", unexpected("ConfigCreate")
	}
	return c.ConfigCreateFunc(ctx, name, labels, data, templateDriver)
}

// ConfigTable calls ConfigTableFunc.
func (c *Client) ConfigTable(ctx context.Context, f filters.Args) (api.SecretTable, error) {
	if c.ConfigTableFunc == nil {
		return api.SecretTable{}, unexpected("ConfigTable")
	}
	return c.ConfigTableFunc(ctx, f)
}

// ConfigInspect calls ConfigInspectFunc.
func (c *Client) ConfigInspect(ctx context.Context, ref string) (api.Config, error) {
	if c.ConfigInspectFunc == nil {
		return api.Config{}, unexpected("ConfigInspect")
	}
	return c.ConfigInspectFunc(ctx, ref)
}

// ConfigRemove calls ConfigRemoveFunc.
func (c *Client) ConfigRemove(ctx context.Context, ref string) error {
	if c.ConfigRemoveFunc == nil {
		return unexpected("ConfigRemove")
	}
	return c.ConfigRemoveFunc(ctx, ref)
}

// ConfigUpdate calls ConfigUpdateFunc.
func (c *Client) ConfigUpdate(ctx context.Context, ref string, data []byte, keep int) (api.Config, error) {
	if c.ConfigUpdateFunc == nil {
		return api.Config{}, unexpected("ConfigUpdate")
	}
	return c.ConfigUpdateFunc(ctx, ref, data, keep)
}

// ConfigUpdateIfChanged calls ConfigUpdateIfChangedFunc.
func (c *Client) ConfigUpdateIfChanged(ctx context.Context, ref string, data []byte) (api.Config, error) {
	if c.ConfigUpdateIfChangedFunc == nil {
		return api.Config{}, unexpected("ConfigUpdateIfChanged")
	}
	return c.ConfigUpdateIfChangedFunc(ctx, ref, data)
}
