package compose

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/api/client"
	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/internal/compose"
)

// provide makes every secret and config the project uses available in
// secretd before compose starts anything: external ones must exist (all
// missing ones are named at once), file:, environment: and content: ones
// are imported, with a new version only when their source changed, and
// driver: secrets are created with their driver when secretd does not have
// them yet.
func (o options) provide(ctx context.Context, c *cli.Cli, t *compose.Translation) error {
	cl, err := c.Client()
	if err != nil {
		return err
	}
	kinds := []struct {
		objs objects
		list []compose.Secret
	}{{secretObjects(cl), t.Secrets}, {configObjects(cl), t.Configs}}
	// Every missing one is named at once, by kind.
	missing := map[string][]string{}
	for _, k := range kinds {
		for _, s := range k.list {
			if !s.External {
				continue
			}
			if _, err := k.objs.inspect(ctx, s.Name); client.IsNotFound(err) {
				missing[k.objs.noun] = append(missing[k.objs.noun], s.Name)
			} else if err != nil {
				return fmt.Errorf("external %s %s: %w", k.objs.noun, s.Name, err)
			}
		}
	}
	var errs []string
	for _, noun := range []string{"secret", "config"} {
		names := missing[noun]
		if len(names) == 0 {
			continue
		}
		plural, pronoun := "", "it"
		if len(names) > 1 {
			plural, pronoun = "s", "them"
		}
		errs = append(errs, fmt.Sprintf("external %s%s not found in secretd: %s: create %s with 'secretd %s create NAME FILE|-' first", noun, plural, strings.Join(names, ", "), pronoun, noun))
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; ") + "; nothing was started")
	}
	// Read every source before writing any, so a missing file changes nothing.
	data := map[string][]byte{}
	defer func() {
		for _, d := range data {
			clear(d)
		}
	}()
	for _, k := range kinds {
		for _, s := range k.list {
			if s.External || s.Driver != "" {
				continue
			}
			d, err := read(s, t.Project.Environment)
			if err != nil {
				return err
			}
			data[k.objs.noun+"/"+s.Key] = d
		}
	}
	for _, k := range kinds {
		for _, s := range k.list {
			if s.External {
				continue
			}
			if s.Driver != "" {
				if err := createFromDriver(ctx, c, cl, s, t.Project.Name); err != nil {
					return err
				}
				continue
			}
			if err := importObject(ctx, c, k.objs, s, t.Project.Name, data[k.objs.noun+"/"+s.Key]); err != nil {
				return err
			}
		}
	}
	return nil
}

func read(s compose.Secret, env map[string]string) ([]byte, error) {
	noun := s.Kind.Noun()
	if s.File != "" {
		d, err := compose.ReadSecretFile(s.File)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", noun, s.Key, err)
		}
		return d, nil
	}
	if s.Env != "" {
		if v, ok := env[s.Env]; ok {
			return []byte(v), nil
		}
		if !s.HasContent {
			return nil, fmt.Errorf("%s %q: environment variable %s is not set: set it, or put it in the project's .env", noun, s.Key, s.Env)
		}
	}
	return []byte(s.Content), nil
}

// objects is what compose asks secretd about the secrets or the configs:
// one shape for both kinds.
type objects struct {
	noun    string
	inspect func(ctx context.Context, name string) (object, error)
	create  func(ctx context.Context, name string, labels map[string]string, data []byte, template string) error
	// updateIfChanged stores data as a new version unless it is the
	// current one, and returns the current version after, with what a new
	// version did to the containers that use it.
	updateIfChanged func(ctx context.Context, name string, data []byte) (int, *api.Rotation, error)
	remove          func(ctx context.Context, id string) error
}

// object is what compose reads of one secret or config.
type object struct {
	ID       string
	Labels   map[string]string
	Version  int
	Template string
	Driver   string
}

func secretObjects(cl cli.APIClient) objects {
	return objects{
		noun: "secret",
		inspect: func(ctx context.Context, name string) (object, error) {
			s, err := cl.SecretInspect(ctx, name)
			o := object{ID: s.ID, Labels: s.Spec.Labels, Version: s.CurrentVersion}
			if s.Spec.Templating != nil {
				o.Template = s.Spec.Templating.Name
			}
			if s.Source != nil {
				o.Driver = s.Source.Driver
			}
			return o, err
		},
		create: func(ctx context.Context, name string, labels map[string]string, data []byte, template string) error {
			var err error
			if template != "" {
				_, err = cl.SecretCreateTemplate(ctx, name, labels, data, template)
			} else {
				_, err = cl.SecretCreate(ctx, name, labels, data)
			}
			return err
		},
		updateIfChanged: func(ctx context.Context, name string, data []byte) (int, *api.Rotation, error) {
			s, err := cl.SecretUpdateIfChanged(ctx, name, data)
			return s.CurrentVersion, s.Rotation, err
		},
		remove: func(ctx context.Context, id string) error { return cl.SecretRemove(ctx, id) },
	}
}

func configObjects(cl cli.APIClient) objects {
	return objects{
		noun: "config",
		inspect: func(ctx context.Context, name string) (object, error) {
			c, err := cl.ConfigInspect(ctx, name)
			clear(c.Spec.Data)
			o := object{ID: c.ID, Labels: c.Spec.Labels, Version: c.CurrentVersion}
			if c.Spec.Templating != nil {
				o.Template = c.Spec.Templating.Name
			}
			return o, err
		},
		create: func(ctx context.Context, name string, labels map[string]string, data []byte, template string) error {
			_, err := cl.ConfigCreate(ctx, name, labels, data, template)
			return err
		},
		updateIfChanged: func(ctx context.Context, name string, data []byte) (int, *api.Rotation, error) {
			c, err := cl.ConfigUpdateIfChanged(ctx, name, data)
			return c.CurrentVersion, c.Rotation, err
		},
		remove: func(ctx context.Context, id string) error { return cl.ConfigRemove(ctx, id) },
	}
}

// importObject creates or refreshes the secret or config of a file:,
// environment: or content: source. One of that name that this project
// did not import is left alone: it may be someone else's.
func importObject(ctx context.Context, c *cli.Cli, objs objects, s compose.Secret, project string, data []byte) error {
	labels := maps.Clone(s.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[compose.NamespaceLabel] = project
	cur, err := objs.inspect(ctx, s.Name)
	if client.IsNotFound(err) {
		if err := objs.create(ctx, s.Name, labels, data, s.Template); err != nil {
			return fmt.Errorf("%s %q: %w", objs.noun, s.Key, err)
		}
		fmt.Fprintf(c.Err, "Creating %s %s\n", objs.noun, s.Name)
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s %q: %w", objs.noun, s.Key, err)
	}
	if owner := cur.Labels[compose.NamespaceLabel]; owner != project {
		return fmt.Errorf("%s %q: secretd already has a %s %s that project %s did not create: declare it external: true with name: %s, or remove it", objs.noun, s.Key, objs.noun, s.Name, project, s.Name)
	}
	if cur.Template != s.Template {
		was := "without template_driver"
		if cur.Template != "" {
			was = "with template_driver " + cur.Template
		}
		return fmt.Errorf("%s %q: %s %s was created %s: remove it (down --remove-secrets) to create it as the file says", objs.noun, s.Key, objs.noun, s.Name, was)
	}
	after, rot, err := objs.updateIfChanged(ctx, s.Name, data)
	if err != nil {
		return fmt.Errorf("%s %q: %w", objs.noun, s.Key, err)
	}
	if after != cur.Version {
		fmt.Fprintf(c.Err, "Updating %s %s to version %d\n", objs.noun, s.Name, after)
		c.PrintRotation(fmt.Sprintf("%s '%s'", objs.noun, s.Name), rot)
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

// removeImported removes the secrets and configs the project imported,
// after compose's down: asked for with --remove-secrets. Those still in use
// stay, with the daemon's message.
func removeImported(ctx context.Context, c *cli.Cli, t *compose.Translation, project string) error {
	cl, err := c.Client()
	if err != nil {
		return err
	}
	var errs cli.Errors
	for _, k := range []struct {
		objs objects
		list []compose.Secret
	}{{secretObjects(cl), t.Secrets}, {configObjects(cl), t.Configs}} {
		for _, s := range k.list {
			if s.External {
				continue
			}
			cur, err := k.objs.inspect(ctx, s.Name)
			if client.IsNotFound(err) {
				continue
			}
			if err == nil && cur.Labels[compose.NamespaceLabel] != project {
				continue
			}
			if err == nil {
				err = k.objs.remove(ctx, cur.ID)
			}
			if err != nil {
				errs = append(errs, err)
				continue
			}
			fmt.Fprintf(c.Err, "Removing %s %s\n", k.objs.noun, s.Name)
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}
