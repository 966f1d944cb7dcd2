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

// SecretCreateTemplate stores a new secret whose data is a template of
// driver templateDriver ("golang"), rendered for each container, and
// returns its ID.
func (c *Client) SecretCreateTemplate(ctx context.Context, name string, labels map[string]string, data []byte, templateDriver string) (string, error) {
	var resp swarm.SecretCreateResponse
	spec := swarm.SecretSpec{Annotations: swarm.Annotations{Name: name, Labels: labels}, Data: data, Templating: templating(templateDriver)}
	err := c.do(ctx, http.MethodPost, "/secrets/create", nil, spec, &resp)
	return resp.ID, err
}

func templating(driver string) *swarm.Driver {
	if driver == "" {
		return nil
	}
	return &swarm.Driver{Name: driver}
}

// ConfigCreate stores a new config and returns its ID; a templateDriver
// ("golang") makes its data a template.
func (c *Client) ConfigCreate(ctx context.Context, name string, labels map[string]string, data []byte, templateDriver string) (string, error) {
	var resp swarm.ConfigCreateResponse
	spec := swarm.ConfigSpec{Annotations: swarm.Annotations{Name: name, Labels: labels}, Data: data, Templating: templating(templateDriver)}
	err := c.do(ctx, http.MethodPost, "/configs/create", nil, spec, &resp)
	return resp.ID, err
}

// ConfigList lists configs matching f (keys name, names, id, label), with
// their data, as Docker's GET /configs does.
func (c *Client) ConfigList(ctx context.Context, f filters.Args) ([]api.Config, error) {
	q, err := filterQuery(f)
	if err != nil {
		return nil, err
	}
	var out []api.Config
	err = c.do(ctx, http.MethodGet, "/configs", q, nil, &out)
	return out, err
}

// ConfigTable lists configs by column, without their data: what `secretd
// config ls` prints; it works while the store is locked.
func (c *Client) ConfigTable(ctx context.Context, f filters.Args) (api.SecretTable, error) {
	var out api.SecretTable
	q, err := filterQuery(f)
	if err != nil {
		return out, err
	}
	err = c.do(ctx, http.MethodGet, "/secretd/configs", q, nil, &out)
	return out, err
}

// ConfigInspect returns one config, with its data, by ID, name or ID prefix.
func (c *Client) ConfigInspect(ctx context.Context, ref string) (api.Config, error) {
	var out api.Config
	err := c.do(ctx, http.MethodGet, "/configs/"+url.PathEscape(ref), nil, nil, &out)
	return out, err
}

// ConfigRemove deletes a config.
func (c *Client) ConfigRemove(ctx context.Context, ref string) error {
	return c.do(ctx, http.MethodDelete, "/configs/"+url.PathEscape(ref), nil, nil, nil)
}

// ConfigUpdate stores data as the config's next version, in place: every
// running container that uses it (or a template that reads it) sees it.
// keep 0 means the daemon's default number of kept versions.
func (c *Client) ConfigUpdate(ctx context.Context, ref string, data []byte, keep int) (api.Config, error) {
	var out api.Config
	err := c.do(ctx, http.MethodPost, "/secretd/configs/"+url.PathEscape(ref)+"/update", nil, api.ConfigUpdateRequest{Data: data, Keep: keep}, &out)
	return out, err
}

// ConfigUpdateAt is ConfigUpdate that fails unless the config is still at index.
func (c *Client) ConfigUpdateAt(ctx context.Context, ref string, index uint64, data []byte, keep int) (api.Config, error) {
	var out api.Config
	q := url.Values{"version": {strconv.FormatUint(index, 10)}}
	err := c.do(ctx, http.MethodPost, "/secretd/configs/"+url.PathEscape(ref)+"/update", q, api.ConfigUpdateRequest{Data: data, Keep: keep}, &out)
	return out, err
}

// ConfigUpdateIfChanged is ConfigUpdate that stores nothing when data is
// what the current version holds; CurrentVersion tells which.
func (c *Client) ConfigUpdateIfChanged(ctx context.Context, ref string, data []byte) (api.Config, error) {
	var out api.Config
	err := c.do(ctx, http.MethodPost, "/secretd/configs/"+url.PathEscape(ref)+"/update", nil, api.ConfigUpdateRequest{Data: data, IfChanged: true}, &out)
	return out, err
}
