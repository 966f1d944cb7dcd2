package formatter

import (
	"bytes"
	"testing"
	"text/tabwriter"
	"time"
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
		format Format
		plain  bool
	}{
		{"table {{.ID}}\t{{.Name}}", true},
		{`{{.ID}}\t{{.Name}}`, true}, // as typed in a shell
		{"{{ .Name }}", true},
		{"{{.ID}}: {{.Name}}", false},
		{"{{.Size}}", false},
		{"{{.Upper}}", false},
		{"{{.Missing}}", false},
	} {
		text := c.format.template()
		fields := plainFields(text, rows)
		if (fields != nil) != c.plain {
			t.Errorf("%q: plain %v, want %v", c.format, fields != nil, c.plain)
			continue
		}
		if fields == nil {
			continue
		}
		tmpl, err := Parse(text)
		if err != nil {
			t.Fatal(err)
		}
		var want, got bytes.Buffer
		for _, r := range rows {
			tmpl.Execute(&want, r)
		}
		writePlain(&got, fields, rows)
		if got.String() != want.String() {
			t.Errorf("%q: plain path printed %q, template %q", c.format, got.String(), want.String())
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

// Ages prints what Ago prints, though it formats each whole second once.
func TestAgesMatchAgo(t *testing.T) {
	now := time.Date(2026, 11, 22, 16, 0, 0, 0, time.UTC)
	a := NewAges(now)
	var ds []time.Duration
	for _, base := range []time.Duration{0, time.Second, 59 * time.Second, time.Minute, 30 * time.Minute, 90 * time.Minute, 47*time.Hour + 30*time.Minute, 400 * 24 * time.Hour, 800 * 24 * time.Hour} {
		for _, off := range []time.Duration{-time.Second, -999 * time.Millisecond, -1, 0, 1, 500 * time.Millisecond, 999 * time.Millisecond} {
			ds = append(ds, base+off)
		}
	}
	for _, d := range ds {
		for range 2 { // once formatted, once from the memo
			if got, want := a.Since(now.Add(-d)), Ago(now, now.Add(-d)); got != want {
				t.Errorf("age %v: %q, want %q", d, got, want)
			}
		}
	}
	if a.Since(time.Time{}) != "" {
		t.Error("the zero time has an age")
	}
}
