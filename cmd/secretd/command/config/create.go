package config

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/secretd/secretd/cmd/secretd/cli"
)

type createOptions struct {
	labels         []string
	templateDriver string
}

func newCreateCommand(c *cli.Cli) *cobra.Command {
	var o createOptions
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] CONFIG FILE|-",
		Short: "Create a config from a file or stdin",
		Example: `  secretd config create site.conf ./site.conf
  secretd config create --label app=nginx site.conf - < site.conf
  secretd config create --template-driver golang app.ini ./app.ini.tmpl`,
		Args: cobra.ExactArgs(2),
		// CONFIG is a new name; FILE is a file.
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return nil, cobra.ShellCompDirectiveDefault
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			labels, err := parseLabels(o.labels)
			if err != nil {
				return err
			}
			data, err := readData(c, args)
			if err != nil {
				return err
			}
			cl, err := c.Client()
			if err != nil {
				return err
			}
			id, err := cl.ConfigCreate(cmd.Context(), args[0], labels, data, o.templateDriver)
			if err != nil {
				return err
			}
			fmt.Fprintln(c.Out, id)
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&o.labels, "label", "l", nil, "config labels (`key=value`, repeatable)")
	cmd.Flags().StringVar(&o.templateDriver, "template-driver", "", "template `DRIVER` (golang): the data is a template rendered for each container (docs/templates.md)")
	return cmd
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
