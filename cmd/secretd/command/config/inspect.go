package config

import (
	"errors"
	"fmt"
	"strings"
	"text/template"

	"github.com/spf13/cobra"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/cmd/secretd/command/completion"
	"github.com/secretd/secretd/cmd/secretd/command/formatter"
)

type inspectOptions struct {
	pretty bool
	format string
}

func newInspectCommand(c *cli.Cli) *cobra.Command {
	var o inspectOptions
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] CONFIG [CONFIG...]",
		Short: "Display detailed information on one or more configs, their data included",
		Example: `  secretd config inspect site.conf
  secretd config inspect --pretty site.conf
  secretd config inspect --format '{{printf "%s" .Spec.Data}}' site.conf`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completion.Configs(c, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.pretty && o.format != "" {
				return errors.New("--format is incompatible with human friendly format")
			}
			cl, err := c.Client()
			if err != nil {
				return err
			}
			var found []api.Config
			var errs []error
			for _, ref := range args {
				cfg, err := cl.ConfigInspect(cmd.Context(), ref)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				found = append(found, cfg)
			}
			if err := writeInspect(c, o, found); err != nil {
				return err
			}
			return joinErrors(errs)
		},
	}
	cmd.Flags().BoolVar(&o.pretty, "pretty", false, "print the information in a human friendly format")
	cmd.Flags().StringVarP(&o.format, "format", "f", "", "format output using a Go template")
	return cmd
}

// prettyTemplate is docker's `config inspect --pretty`, with secretd's
// versions and template driver.
const prettyTemplate = `ID:              {{.ID}}
Name:            {{.Spec.Name}}
{{- if .Spec.Labels}}
Labels:
{{- range $k, $v := .Spec.Labels}}
 - {{$k}}{{if $v}}={{$v}}{{end}}
{{- end}}{{end}}
Version:         {{.CurrentVersion}}
{{- if .Versions}}
Versions kept:   {{range $i, $v := .Versions}}{{if $i}}, {{end}}{{$v.Version}}{{end}}{{end}}
{{- with .Spec.Templating}}
Template driver: {{.Name}}{{end}}
Created at:      {{.CreatedAt}}
Updated at:      {{.UpdatedAt}}
Data:
{{printf "%s" .Spec.Data}}
`

func writeInspect(c *cli.Cli, o inspectOptions, configs []api.Config) error {
	switch {
	case o.pretty:
		t := template.Must(template.New("pretty").Parse(prettyTemplate))
		for i, cfg := range configs {
			if i > 0 {
				fmt.Fprintln(c.Out)
			}
			if err := t.Execute(c.Out, cfg); err != nil {
				return err
			}
		}
		return nil
	case o.format != "":
		t, err := formatter.Parse(strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(o.format) + "\n")
		if err != nil {
			return err
		}
		for _, cfg := range configs {
			if err := t.Execute(c.Out, cfg); err != nil {
				return fmt.Errorf("template: %w", err)
			}
		}
		return nil
	default:
		if configs == nil {
			configs = []api.Config{}
		}
		return formatter.JSONIndent(c.Out, configs)
	}
}
