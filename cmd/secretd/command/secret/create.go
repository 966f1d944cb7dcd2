package secret

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/secretd/secretd/cmd/secretd/cli"
)

type createOptions struct {
	labels []string
	data   dataOptions
}

func newCreateCommand(c *cli.Cli) *cobra.Command {
	var o createOptions
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] SECRET [FILE|-]",
		Short: "Create a secret from a file, stdin, an environment variable or random bytes",
		Example: `  printf 'hunter2' | secretd secret create db_password -
  secretd secret create --label env=prod tls_key ./server.key
  secretd secret create --generate 32 django_secret_key
  secretd secret create --from-env API_TOKEN api_token`,
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
	o.data.addFlags(cmd)
	return cmd
}

func runCreate(cmd *cobra.Command, c *cli.Cli, o createOptions, args []string) error {
	labels, err := parseLabels(o.labels)
	if err != nil {
		return err
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
	id, err := cl.SecretCreate(cmd.Context(), args[0], labels, data)
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
