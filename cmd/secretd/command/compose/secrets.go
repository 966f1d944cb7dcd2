package compose

import (
	"context"
	"fmt"
	"maps"
	"strings"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/api/client"
	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/internal/compose"
)

// provide makes every secret the project uses available in secretd before
// compose starts anything: external secrets must exist (all missing ones
// are named at once), file: and environment: secrets are imported, with a
// new version only when their source changed, and driver: secrets are
// created with their driver when secretd does not have them yet.
func (o options) provide(ctx context.Context, c *cli.Cli, t *compose.Translation) error {
	cl, err := c.Client()
	if err != nil {
		return err
	}
	var missing []string
	for _, s := range t.Secrets {
		if !s.External {
			continue
		}
		if _, err := cl.SecretInspect(ctx, s.Name); client.IsNotFound(err) {
			missing = append(missing, s.Name)
		} else if err != nil {
			return fmt.Errorf("external secret %s: %w", s.Name, err)
		}
	}
	if len(missing) > 0 {
		plural := ""
		if len(missing) > 1 {
			plural = "s"
		}
		return fmt.Errorf("external secret%s not found in secretd: %s: create %s with 'secretd secret create NAME FILE|-' first; nothing was started",
			plural, strings.Join(missing, ", "), map[bool]string{true: "them", false: "it"}[len(missing) > 1])
	}
	// Read every source before writing any, so a missing file changes nothing.
	data := map[string][]byte{}
	defer func() {
		for _, d := range data {
			clear(d)
		}
	}()
	for _, s := range t.Secrets {
		if s.External || s.Driver != "" {
			continue
		}
		d, err := read(s, t.Project.Environment)
		if err != nil {
			return err
		}
		data[s.Key] = d
	}
	for _, s := range t.Secrets {
		if s.External {
			continue
		}
		if s.Driver != "" {
			if err := createFromDriver(ctx, c, cl, s, t.Project.Name); err != nil {
				return err
			}
			continue
		}
		if err := importSecret(ctx, c, cl, s, t.Project.Name, data[s.Key]); err != nil {
			return err
		}
	}
	return nil
}

func read(s compose.Secret, env map[string]string) ([]byte, error) {
	if s.File != "" {
		d, err := compose.ReadSecretFile(s.File)
		if err != nil {
			return nil, fmt.Errorf("secret %q: %w", s.Key, err)
		}
		return d, nil
	}
	v, ok := env[s.Env]
	if !ok {
		return nil, fmt.Errorf("secret %q: environment variable %s is not set: set it, or put it in the project's .env", s.Key, s.Env)
	}
	return []byte(v), nil
}

// importSecret creates or refreshes the secret of a file: or environment:
// source. A secret of that name that this project did not import is left
// alone: it may be someone else's.
func importSecret(ctx context.Context, c *cli.Cli, cl cli.APIClient, s compose.Secret, project string, data []byte) error {
	labels := maps.Clone(s.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[compose.NamespaceLabel] = project
	cur, err := cl.SecretInspect(ctx, s.Name)
	if client.IsNotFound(err) {
		if _, err := cl.SecretCreate(ctx, s.Name, labels, data); err != nil {
			return fmt.Errorf("secret %q: %w", s.Key, err)
		}
		fmt.Fprintf(c.Err, "Creating secret %s\n", s.Name)
		return nil
	}
	if err != nil {
		return fmt.Errorf("secret %q: %w", s.Key, err)
	}
	if owner := cur.Spec.Labels[compose.NamespaceLabel]; owner != project {
		return fmt.Errorf("secret %q: secretd already has a secret %s that project %s did not create: declare it external: true with name: %s, or remove it", s.Key, s.Name, project, s.Name)
	}
	after, err := cl.SecretUpdateIfChanged(ctx, s.Name, data)
	if err != nil {
		return fmt.Errorf("secret %q: %w", s.Key, err)
	}
	if after.CurrentVersion != cur.CurrentVersion {
		fmt.Fprintf(c.Err, "Updating secret %s to version %d\n", s.Name, after.CurrentVersion)
		c.PrintRotation(fmt.Sprintf("secret '%s'", s.Name), after.Rotation)
	}
	return nil
}

// driverClient is what createFromDriver asks of secretd.
type driverClient interface {
	SecretInspect(ctx context.Context, ref string) (api.Secret, error)
	SecretCreateFromSource(ctx context.Context, name string, labels map[string]string, src client.SourceSpec) (string, error)
}

// createFromDriver creates a driver: secret, as `docker stack deploy` does,
// when secretd does not have it. One this project created before is left
// as it is: its driver options cannot be read back to compare, so changed
// driver_opts need the secret removed first (down --remove-secrets).
func createFromDriver(ctx context.Context, c *cli.Cli, cl driverClient, s compose.Secret, project string) error {
	labels := maps.Clone(s.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[compose.NamespaceLabel] = project
	cur, err := cl.SecretInspect(ctx, s.Name)
	if client.IsNotFound(err) {
		if _, err := cl.SecretCreateFromSource(ctx, s.Name, labels, client.SourceSpec{Driver: s.Driver, Options: s.DriverOpts}); err != nil {
			return fmt.Errorf("secret %q: %w", s.Key, err)
		}
		fmt.Fprintf(c.Err, "Creating secret %s with driver %s\n", s.Name, s.Driver)
		return nil
	}
	if err != nil {
		return fmt.Errorf("secret %q: %w", s.Key, err)
	}
	if owner := cur.Spec.Labels[compose.NamespaceLabel]; owner != project {
		return fmt.Errorf("secret %q: secretd already has a secret %s that project %s did not create: declare it external: true with name: %s, or remove it", s.Key, s.Name, project, s.Name)
	}
	if cur.Source == nil || cur.Source.Driver != s.Driver {
		return fmt.Errorf("secret %q: secret %s was created by project %s without driver %s: remove it (down --remove-secrets) to create it with its driver", s.Key, s.Name, project, s.Driver)
	}
	return nil
}

// removeImported removes the secrets the project imported, after compose's
// down: asked for with --remove-secrets. Secrets still in use stay, with
// the daemon's message.
func removeImported(ctx context.Context, c *cli.Cli, t *compose.Translation, project string) error {
	cl, err := c.Client()
	if err != nil {
		return err
	}
	var errs cli.Errors
	for _, s := range t.Secrets {
		if s.External {
			continue
		}
		cur, err := cl.SecretInspect(ctx, s.Name)
		if client.IsNotFound(err) {
			continue
		}
		if err == nil && cur.Spec.Labels[compose.NamespaceLabel] != project {
			continue
		}
		if err == nil {
			err = cl.SecretRemove(ctx, cur.ID)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(c.Err, "Removing secret %s\n", s.Name)
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}
