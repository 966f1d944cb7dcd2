package secret

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
		Use:   "inspect [OPTIONS] SECRET [SECRET...]",
		Short: "Display detailed information on one or more secrets (never their data)",
		Example: `  secretd secret inspect db_password
  secretd secret inspect --pretty db_password
  secretd secret inspect --format '{{.CurrentVersion}}' db_password`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completion.Secrets(c, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.pretty && o.format != "" {
				return errors.New("--format is incompatible with human friendly format")
			}
			cl, err := c.Client()
			if err != nil {
				return err
			}
			var found []api.Secret
			var errs []error
			for _, ref := range args {
				s, err := cl.SecretInspect(cmd.Context(), ref)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				found = append(found, s)
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

const prettyTemplate = `ID:              {{.ID}}
Name:            {{.Spec.Name}}
{{- if .Spec.Labels}}
Labels:
{{- range $k, $v := .Spec.Labels}}
 - {{$k}}{{if $v}}={{$v}}{{end}}
{{- end}}{{end}}
Version:         {{if .CurrentVersion}}{{.CurrentVersion}}{{else}}none: the driver gives the value at each mount{{end}}
{{- if .Versions}}
Versions kept:   {{range $i, $v := .Versions}}{{if $i}}, {{end}}{{$v.Version}}{{end}}{{end}}
{{- with .Source}}
Driver:          {{.Driver}}
{{- if .OptionKeys}}
Driver options:  {{range $i, $k := .OptionKeys}}{{if $i}}, {{end}}{{$k}}{{end}}{{end}}
Cache:           {{if .Cache}}yes{{else}}no{{end}}
Refresh:         {{if .Refresh}}every {{.Refresh}}{{else}}no{{end}}
{{- with .LastMount}}
Last mount:      {{.At}}, {{if .Cached}}served from the cache (stale): {{.Error}}{{else}}fetched from the source{{end}}{{end}}{{end}}
{{- with .Spec.Templating}}
Template driver: {{.Name}}{{end}}
Created at:      {{.CreatedAt}}
Updated at:      {{.UpdatedAt}}
`

func writeInspect(c *cli.Cli, o inspectOptions, secrets []api.Secret) error {
	switch {
	case o.pretty:
		t := template.Must(template.New("pretty").Parse(prettyTemplate))
		for i, s := range secrets {
			if i > 0 {
				fmt.Fprintln(c.Out)
			}
			if err := t.Execute(c.Out, s); err != nil {
				return err
			}
		}
		return nil
	case o.format != "":
		t, err := formatter.Parse(strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(o.format) + "\n")
		if err != nil {
			return err
		}
		for _, s := range secrets {
			if err := t.Execute(c.Out, s); err != nil {
				return fmt.Errorf("template: %w", err)
			}
		}
		return nil
	default:
		if secrets == nil {
			secrets = []api.Secret{}
		}
		return formatter.JSONIndent(c.Out, secrets)
	}
}

// joinErrors reports every failed reference, as the docker CLI does for
// commands taking several names.
func joinErrors(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return cli.Errors(errs)
}
