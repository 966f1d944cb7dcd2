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

// driverListFormat is the default when a listed secret has a driver.
const driverListFormat = "table {{.ID}}\t{{.Name}}\t{{.Version}}\t{{.Driver}}\t{{.CreatedAt}}\t{{.UpdatedAt}}"

// templateListFormat is the default when a listed secret is a template.
const templateListFormat = "table {{.ID}}\t{{.Name}}\t{{.Version}}\t{{.Template}}\t{{.CreatedAt}}\t{{.UpdatedAt}}"

// driverTemplateListFormat is the default when there are both.
const driverTemplateListFormat = "table {{.ID}}\t{{.Name}}\t{{.Version}}\t{{.Driver}}\t{{.Template}}\t{{.CreatedAt}}\t{{.UpdatedAt}}"

var listHeaders = map[string]string{
	"ID": "ID", "Name": "NAME", "Version": "VERSION", "CreatedAt": "CREATED",
	"UpdatedAt": "UPDATED", "Labels": "LABELS", "Driver": "DRIVER", "Template": "TEMPLATE",
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
			t, err := cl.SecretTable(cmd.Context(), f)
			if err != nil {
				return err
			}
			return writeList(c, o, t, time.Now())
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
	Template  string
	CreatedAt string
	UpdatedAt string
	Labels    string
	labels    map[string]string
}

// Label returns one label's value, as the docker CLI's {{.Label "k"}}.
func (r listRow) Label(name string) string { return r.labels[name] }

func writeList(c *cli.Cli, o listOptions, t api.SecretTable, now time.Time) error {
	format := o.format
	switch {
	case o.quiet && format == "":
		format = "{{.ID}}"
	case (format == "" || format == formatter.Table) && len(t.Drivers) > 0 && len(t.Templates) > 0:
		format = driverTemplateListFormat
	case (format == "" || format == formatter.Table) && len(t.Drivers) > 0:
		format = driverListFormat
	case (format == "" || format == formatter.Table) && len(t.Templates) > 0:
		format = templateListFormat
	case format == "" || format == formatter.Table:
		format = defaultListFormat
	}
	n := len(t.IDs)
	if len(t.Names) != n || len(t.CurrentVersions) != n || len(t.CreatedAt) != n || len(t.UpdatedAt) != n {
		return fmt.Errorf("secretd answered a secret table with columns of different lengths")
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return t.Names[order[a]] < t.Names[order[b]] })
	ago := formatter.NewAges(now)
	rows := make([]any, 0, n)
	for _, i := range order {
		id := t.IDs[i]
		var labels []string
		for k, v := range t.Labels[id] {
			labels = append(labels, k+"="+v)
		}
		sort.Strings(labels)
		version := strconv.Itoa(t.CurrentVersions[i])
		if t.CurrentVersions[i] == 0 {
			version = "-" // a driver secret with no stored value
		}
		rows = append(rows, listRow{
			ID: id, Name: t.Names[i], Version: version, Driver: t.Drivers[id], Template: t.Templates[id],
			CreatedAt: ago.Since(unixNano(t.CreatedAt[i])), UpdatedAt: ago.Since(unixNano(t.UpdatedAt[i])),
			Labels: strings.Join(labels, ","), labels: t.Labels[id],
		})
	}
	return formatter.Write(c.Out, formatter.Format(format), rows, listHeaders)
}

// unixNano is the time of a SecretTable column; 0 is no time at all.
func unixNano(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}
