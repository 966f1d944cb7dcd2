package declaration

import (
	"errors"
	"strings"
	"testing"

	"github.com/secretd/secretd/errdefs"
)

// ParseOnUpdate reads what users write, gives it one canonical form, and
// refuses the rest naming the label and its value.
func TestParseOnUpdate(t *testing.T) {
	for in, want := range map[string]string{
		"": "none", "none": "none", " restart ": "restart", "signal:SIGHUP": "signal:SIGHUP", "signal:hup": "signal:SIGHUP", "signal:usr1": "signal:SIGUSR1",
	} {
		o, err := ParseOnUpdate(in)
		if err != nil || o.String() != want {
			t.Errorf("%q: %v %v, want %s", in, o, err, want)
			continue
		}
		if back, err := ParseOnUpdate(o.String()); err != nil || back != o {
			t.Errorf("%q: canonical %q reads back as %v %v", in, o.String(), back, err)
		}
	}
	for in, want := range map[string]string{
		"signal:SIGHUPP": `label secretd.on-update="signal:SIGHUPP": unknown signal "SIGHUPP"`,
		"restart-always": `label secretd.on-update="restart-always": use none, signal:SIGNAME (signal:SIGHUP) or restart`,
		"signal:":        `label secretd.on-update="signal:": unknown signal ""`,
	} {
		_, err := ParseOnUpdate(in)
		if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%q: %v, want an invalid-input error containing %q", in, err, want)
		}
	}
	if _, err := ParseOnUpdateOption("reload"); err == nil || !strings.HasPrefix(err.Error(), `option on-update="reload": `) {
		t.Errorf("option: %v", err)
	}
}
