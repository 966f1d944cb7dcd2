package secret

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/secretd/secretd/api/client"
	"github.com/secretd/secretd/cmd/secretd/cli"
)

type createOptions struct {
	labels         []string
	templateDriver string
	data           dataOptions
	driver         string
	driverOpts     []string
	cache          bool
	refresh        time.Duration
}

func newCreateCommand(c *cli.Cli) *cobra.Command {
	var o createOptions
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] SECRET [FILE|-]",
		Short: "Create a secret from a file, stdin, an environment variable, random bytes or a secret driver",
		Example: `  printf 'hunter2' | secretd secret create db_password -
  secretd secret create --label env=prod tls_key ./server.key
  secretd secret create --generate 32 django_secret_key
  secretd secret create --from-env API_TOKEN api_token
  secretd secret create --driver shell --driver-opt lookup='pass show db/password' db_password
  secretd secret create --driver vault --cache --refresh 5m api_key
  printf 'dsn=app:{{ secret "db_password" }}@db' | secretd secret create --template-driver golang dsn -`,
		Args: cobra.RangeArgs(1, 2),
		// SECRET is a new name; FILE is a file.
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return nil, cobra.ShellCompDirectiveDefault
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCreate(cmd, c, o, args)
		},
	}
	cmd.Flags().StringArrayVarP(&o.labels, "label", "l", nil, "secret labels (`key=value`, repeatable)")
	cmd.Flags().StringVar(&o.templateDriver, "template-driver", "", "template `DRIVER` (golang): the data is a template rendered for each container (docs/templates.md)")
	o.data.addFlags(cmd)
	cmd.Flags().StringVarP(&o.driver, "driver", "d", "", "take the value from secret driver `NAME` (shell, or a secret-driver plugin) at each container start; data, if given, is kept by the driver's store command")
	cmd.Flags().StringArrayVar(&o.driverOpts, "driver-opt", nil, "driver option (`key=value`, repeatable), stored encrypted")
	cmd.Flags().BoolVar(&o.cache, "cache", false, "keep the last value the driver gave, encrypted, and serve it when the driver fails")
	cmd.Flags().DurationVar(&o.refresh, "refresh", 0, "poll the driver every `DURATION` (at least 1s); a changed value rotates into running containers")
	return cmd
}

func runCreate(cmd *cobra.Command, c *cli.Cli, o createOptions, args []string) error {
	labels, err := parseLabels(o.labels)
	if err != nil {
		return err
	}
	if o.driver != "" || len(o.driverOpts) > 0 || o.cache || o.refresh != 0 {
		if o.templateDriver != "" {
			return errors.New("--template-driver makes the data a template: a secret with --driver has no data of its own to be one")
		}
		return runCreateFromSource(cmd, c, o, args, labels)
	}
	data, err := o.data.read(c, args)
	if err != nil {
		return err
	}
	defer clear(data)
	cl, err := c.Client()
	if err != nil {
		return err
	}
	var id string
	if o.templateDriver != "" {
		id, err = cl.SecretCreateTemplate(cmd.Context(), args[0], labels, data, o.templateDriver)
	} else {
		id, err = cl.SecretCreate(cmd.Context(), args[0], labels, data)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(c.Out, id)
	return nil
}

// runCreateFromSource creates a driver secret: no data, only where to
// fetch it.
func runCreateFromSource(cmd *cobra.Command, c *cli.Cli, o createOptions, args []string, labels map[string]string) error {
	switch {
	case o.driver == "" && o.refresh != 0:
		return errors.New("--refresh polls a secret's driver: give --driver too")
	case o.driver == "" && o.cache:
		return errors.New("--cache keeps the value a secret's driver gives: give --driver too")
	case o.driver == "":
		return errors.New("--driver-opt needs --driver")
	case o.refresh < 0:
		return fmt.Errorf("--refresh %s: the interval must be positive", o.refresh)
	}
	opts := map[string]string{}
	for _, kv := range o.driverOpts {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			// The text is not repeated: it may be a token given without its key.
			return errors.New("invalid --driver-opt: use key=value")
		}
		opts[k] = v
	}
	src := client.SourceSpec{Driver: o.driver, Options: opts, Cache: o.cache}
	if len(args) > 1 || o.data.fromEnv != "" || o.data.generateSet() {
		// Podman's shell driver: the driver's store command keeps the value.
		data, err := o.data.read(c, args)
		if err != nil {
			return err
		}
		defer clear(data)
		src.Data = data
	}
	if o.refresh != 0 {
		src.Refresh = o.refresh.String()
	}
	cl, err := c.Client()
	if err != nil {
		return err
	}
	id, err := cl.SecretCreateFromSource(cmd.Context(), args[0], labels, src)
	if err != nil {
		return err
	}
	fmt.Fprintln(c.Out, id)
	return nil
}

// parseLabels reads "key=value" (or a bare "key", an empty value) as the
// docker CLI does.
func parseLabels(in []string) (map[string]string, error) {
	out := map[string]string{}
	for _, l := range in {
		k, v, _ := strings.Cut(l, "=")
		if strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("invalid label %q: the key must not be empty", l)
		}
		out[k] = v
	}
	return out, nil
}
