package formatter

import (
	"bytes"
	"testing"
	"text/tabwriter"
)

type row struct {
	ID, Name string
	Size     int
}

func (r row) Upper() string { return "U" + r.Name }

// TestPlainMatchesTemplate: the direct path for plain templates prints
// exactly what text/template prints, and is not taken where it could not.
func TestPlainMatchesTemplate(t *testing.T) {
	rows := []any{row{"a1", "näme\twith tab", 1}, row{"", "", 0}, row{"c3", "{{.ID}}", 3}}
	for _, c := range []struct {
		text  string
		plain bool
	}{
		{"{{.ID}}\t{{.Name}}\n", true},
		{"{{ .Name }}\n", true},
		{"{{.ID}}: {{.Name}}\n", false},
		{"{{.Size}}\n", false},
		{"{{.Upper}}\n", false},
		{"{{.Missing}}\n", false},
	} {
		fields := plainFields(c.text, rows)
		if (fields != nil) != c.plain {
			t.Errorf("%q: plain %v, want %v", c.text, fields != nil, c.plain)
			continue
		}
		if fields == nil {
			continue
		}
		tmpl, err := Parse(c.text)
		if err != nil {
			t.Fatal(err)
		}
		var want, got bytes.Buffer
		for _, r := range rows {
			tmpl.Execute(&want, r)
		}
		writePlain(&got, fields, rows)
		if got.String() != want.String() {
			t.Errorf("%q: plain path printed %q, template %q", c.text, got.String(), want.String())
		}
	}
	if plainFields("{{.ID}}\n", []any{row{}, struct{ ID string }{}}) != nil {
		t.Error("rows of two types took the plain path")
	}
	// Through Write, tables come out aligned the same either way.
	var viaWrite, viaTemplate bytes.Buffer
	if err := Write(&viaWrite, "table {{.ID}}\t{{.Name}}", rows, map[string]string{"ID": "ID", "Name": "NAME"}); err != nil {
		t.Fatal(err)
	}
	tw := tabwriter.NewWriter(&viaTemplate, 10, 1, 3, ' ', 0)
	tmpl, _ := Parse("{{.ID}}\t{{.Name}}\n")
	tmpl.Execute(tw, map[string]string{"ID": "ID", "Name": "NAME"})
	for _, r := range rows {
		tmpl.Execute(tw, r)
	}
	tw.Flush()
	if viaWrite.String() != viaTemplate.String() {
		t.Errorf("table:\n%s\nwant:\n%s", viaWrite.String(), viaTemplate.String())
	}
}
