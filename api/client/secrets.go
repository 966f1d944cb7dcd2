package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"

	"github.com/secretd/secretd/api"
)

// SecretCreate stores a new secret and returns its ID.
func (c *Client) SecretCreate(ctx context.Context, name string, labels map[string]string, data []byte) (string, error) {
	var resp swarm.SecretCreateResponse
	spec := swarm.SecretSpec{Annotations: swarm.Annotations{Name: name, Labels: labels}, Data: data}
	err := c.do(ctx, http.MethodPost, "/secrets/create", nil, spec, &resp)
	return resp.ID, err
}

// SourceSpec is the driver part of a driver secret's create.
type SourceSpec struct {
	// Driver is "shell" or a secret-driver plugin's name.
	Driver string
	// Options are the --driver-opt values; they may hold credentials.
	Options map[string]string
	// Cache keeps the last value fetched, served when the source fails.
	Cache bool
	// Refresh is how often the source is polled (a Go duration); empty is never.
	Refresh string
	// Data, when set, is a value for the driver to keep (the shell
	// driver's store command), read back through its lookup.
	Data []byte
}

// SecretCreateFromSource creates a secret whose value comes from a driver
// when a container mounts it, and returns its ID.
func (c *Client) SecretCreateFromSource(ctx context.Context, name string, labels map[string]string, src SourceSpec) (string, error) {
	var resp swarm.SecretCreateResponse
	req := api.SecretCreateRequest{
		SecretSpec: swarm.SecretSpec{Annotations: swarm.Annotations{Name: name, Labels: labels}, Driver: &swarm.Driver{Name: src.Driver, Options: src.Options}, Data: src.Data},
		Cache:      src.Cache, Refresh: src.Refresh,
	}
	err := c.do(ctx, http.MethodPost, "/secrets/create", nil, req, &resp)
	return resp.ID, err
}

// SecretList lists secrets matching f (keys name, names, id, label).
func (c *Client) SecretList(ctx context.Context, f filters.Args) ([]api.Secret, error) {
	q, err := filterQuery(f)
	if err != nil {
		return nil, err
	}
	var out []api.Secret
	err = c.do(ctx, http.MethodGet, "/secrets", q, nil, &out)
	return out, err
}

func filterQuery(f filters.Args) (url.Values, error) {
	q := url.Values{}
	if f.Len() > 0 {
		s, err := filters.ToJSON(f)
		if err != nil {
			return nil, err
		}
		q.Set("filters", s)
	}
	return q, nil
}

// SecretTable lists secrets as SecretList does, by column: the fields
// `secretd secret ls` prints, for less to decode (see api.SecretTable).
// A daemon older than its CLI (the binary was upgraded, the daemon not yet
// restarted) has no table: the Docker-shaped list then serves.
func (c *Client) SecretTable(ctx context.Context, f filters.Args) (api.SecretTable, error) {
	var out api.SecretTable
	q, err := filterQuery(f)
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodGet, "/secretd/secrets", q, nil, &out)
	if IsNotFound(err) {
		list, err := c.SecretList(ctx, f)
		return api.NewSecretTable(list), err
	}
	return out, err
}

// SecretInspect returns one secret's metadata by ID, name or ID prefix.
func (c *Client) SecretInspect(ctx context.Context, ref string) (api.Secret, error) {
	var out api.Secret
	err := c.do(ctx, http.MethodGet, "/secrets/"+url.PathEscape(ref), nil, nil, &out)
	return out, err
}

// SecretRemove deletes a secret.
func (c *Client) SecretRemove(ctx context.Context, ref string) error {
	return c.do(ctx, http.MethodDelete, "/secrets/"+url.PathEscape(ref), nil, nil, nil)
}

// SecretUpdate stores data as the secret's next version; keep 0 means the
// daemon's default number of kept versions. It uses secretd's own path:
// the Docker one, as in Swarm, changes labels only.
func (c *Client) SecretUpdate(ctx context.Context, ref string, data []byte, keep int) (api.Secret, error) {
	var out api.Secret
	err := c.do(ctx, http.MethodPost, "/secretd/secrets/"+url.PathEscape(ref)+"/update", nil, api.SecretUpdateRequest{Data: data, Keep: keep}, &out)
	return out, err
}

// SecretUpdateAt is SecretUpdate that fails unless the secret is still at index.
func (c *Client) SecretUpdateAt(ctx context.Context, ref string, index uint64, data []byte, keep int) (api.Secret, error) {
	var out api.Secret
	q := url.Values{"version": {strconv.FormatUint(index, 10)}}
	err := c.do(ctx, http.MethodPost, "/secretd/secrets/"+url.PathEscape(ref)+"/update", q, api.SecretUpdateRequest{Data: data, Keep: keep}, &out)
	return out, err
}

// SecretUpdateIfChanged is SecretUpdate that stores nothing when data is
// what the current version holds; the secret's CurrentVersion tells which.
func (c *Client) SecretUpdateIfChanged(ctx context.Context, ref string, data []byte) (api.Secret, error) {
	var out api.Secret
	err := c.do(ctx, http.MethodPost, "/secretd/secrets/"+url.PathEscape(ref)+"/update", nil, api.SecretUpdateRequest{Data: data, IfChanged: true}, &out)
	return out, err
}
