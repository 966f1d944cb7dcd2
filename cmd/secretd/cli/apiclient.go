package cli

import (
	"context"

	"github.com/docker/docker/api/types/filters"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/api/client"
)

// APIClient is the part of the daemon's API the commands use. Commands get
// it from Cli.Client, so their unit tests can hand them a fake instead of a
// daemon, as docker/cli's tests do. A command that needs another method of
// client.Client adds it here.
type APIClient interface {
	SecretCreate(ctx context.Context, name string, labels map[string]string, data []byte) (string, error)
	SecretCreateFromSource(ctx context.Context, name string, labels map[string]string, src client.SourceSpec) (string, error)
	SecretList(ctx context.Context, f filters.Args) ([]api.Secret, error)
	SecretTable(ctx context.Context, f filters.Args) (api.SecretTable, error)
	SecretInspect(ctx context.Context, ref string) (api.Secret, error)
	SecretRemove(ctx context.Context, ref string) error
	SecretUpdate(ctx context.Context, ref string, data []byte, keep int) (api.Secret, error)
	SecretUpdateIfChanged(ctx context.Context, ref string, data []byte) (api.Secret, error)
	SecretCreateTemplate(ctx context.Context, name string, labels map[string]string, data []byte, templateDriver string) (string, error)

	ConfigCreate(ctx context.Context, name string, labels map[string]string, data []byte, templateDriver string) (string, error)
	ConfigTable(ctx context.Context, f filters.Args) (api.SecretTable, error)
	ConfigInspect(ctx context.Context, ref string) (api.Config, error)
	ConfigRemove(ctx context.Context, ref string) error
	ConfigUpdate(ctx context.Context, ref string, data []byte, keep int) (api.Config, error)
	ConfigUpdateIfChanged(ctx context.Context, ref string, data []byte) (api.Config, error)

	Unlock(ctx context.Context, key string) error
	UnlockKey(ctx context.Context) (string, error)
	RotateUnlockKey(ctx context.Context) (string, error)
	RotateKey(ctx context.Context) (int, error)

	Tasks(ctx context.Context) ([]api.Task, error)
	Status(ctx context.Context) (api.Status, error)
	ContainerUpdate(ctx context.Context, ref string, req api.ContainerUpdateRequest) (api.Task, error)
}

// The real client is an APIClient.
var _ APIClient = (*client.Client)(nil)
