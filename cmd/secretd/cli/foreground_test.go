package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// TestRunForeground hands back the child's exit status, 128+N for a
// signal, and 126 when it cannot start.
func TestRunForeground(t *testing.T) {
	var out bytes.Buffer
	c := NewCli(strings.NewReader(""), &out, &out)
	for _, tc := range []struct {
		script string
		want   int
	}{
		{"echo hi", 0},
		{"exit 3", 3},
		{"kill -TERM $$", 143},
	} {
		got, err := c.RunForeground("sh", "/bin/sh", []string{"-c", tc.script})
		if err != nil || got != tc.want {
			t.Errorf("%q: status %d, %v; want %d", tc.script, got, err, tc.want)
		}
	}
	if out.String() != "hi\n" {
		t.Errorf("output %q", out.String())
	}
	_, err := c.RunForeground("compose", "/nonexistent/compose", nil)
	var se *StatusError
	if !errors.As(err, &se) || se.Status != 126 || !strings.Contains(err.Error(), "start compose") {
		t.Errorf("missing binary: %v", err)
	}
}
