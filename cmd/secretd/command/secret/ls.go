package secret

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/spf13/cobra"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/cmd/secretd/command/formatter"
)

const defaultListFormat = "table {{.ID}}\t{{.Name}}\t{{.Version}}\t{{.CreatedAt}}\t{{.UpdatedAt}}"

var listHeaders = map[string]string{
	"ID": "ID", "Name": "NAME", "Version": "VERSION", "CreatedAt": "CREATED",
	"UpdatedAt": "UPDATED", "Labels": "LABELS", "Driver": "DRIVER",
}

type listOptions struct {
	quiet   bool
	format  string
	filters []string
}

func newListCommand(c *cli.Cli) *cobra.Command {
	var o listOptions
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List secrets",
		Example: `  secretd secret ls
  secretd secret ls -q --filter label=env=prod
  secretd secret ls --format '{{.Name}}: version {{.Version}}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f := filters.NewArgs()
			for _, kv := range o.filters {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return fmt.Errorf("bad format of filter (expected name=value): %s", kv)
				}
				f.Add(k, v)
			}
			cl, err := c.Client()
			if err != nil {
				return err
			}
			secrets, err := cl.SecretList(cmd.Context(), f)
			if err != nil {
				return err
			}
			return writeList(c, o, secrets, time.Now())
		},
	}
	cmd.Flags().BoolVarP(&o.quiet, "quiet", "q", false, "only display IDs")
	cmd.Flags().StringVar(&o.format, "format", "", "format output: 'table', 'table TEMPLATE', 'json' or a Go template")
	cmd.Flags().StringArrayVarP(&o.filters, "filter", "f", nil, "filter output (name=, id=, label=)")
	return cmd
}

// listRow is what --format templates see for one secret.
type listRow struct {
	ID        string
	Name      string
	Version   string
	Driver    string
	CreatedAt string
	UpdatedAt string
	Labels    string
	labels    map[string]string
}

// Label returns one label's value, as the docker CLI's {{.Label "k"}}.
func (r listRow) Label(name string) string { return r.labels[name] }

func writeList(c *cli.Cli, o listOptions, secrets []api.Secret, now time.Time) error {
	format := o.format
	switch {
	case o.quiet && format == "":
		format = "{{.ID}}"
	case format == "" || format == formatter.Table:
		format = defaultListFormat
	}
	sort.Slice(secrets, func(i, j int) bool { return secrets[i].Spec.Name < secrets[j].Spec.Name })
	rows := make([]any, 0, len(secrets))
	for _, s := range secrets {
		var labels []string
		for k, v := range s.Spec.Labels {
			labels = append(labels, k+"="+v)
		}
		sort.Strings(labels)
		rows = append(rows, listRow{
			ID: s.ID, Name: s.Spec.Name, Version: strconv.Itoa(s.CurrentVersion),
			CreatedAt: formatter.Ago(now, s.CreatedAt), UpdatedAt: formatter.Ago(now, s.UpdatedAt),
			Labels: strings.Join(labels, ","), labels: s.Spec.Labels,
		})
	}
	return formatter.Write(c.Out, formatter.Format(format), rows, listHeaders)
}
