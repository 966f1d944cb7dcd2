package declaration

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/secretd/secretd/errdefs"
)

// LabelOnUpdate is the container label that says what happens to the
// container after a rotation changed its files.
const LabelOnUpdate = "secretd.on-update"

// OptionOnUpdate is the volume option that fixes the same for every
// container of the volume; `secretd run` and `secretd compose` set it from
// the container's label, checked before docker runs.
const OptionOnUpdate = "on-update"

// OnUpdate is what happens to a container after its secrets change.
type OnUpdate struct {
	// Action is "none", "signal" or "restart".
	Action string
	// Signal is the signal name for Action "signal", e.g. "SIGHUP".
	Signal string
}

// String is the canonical value, which ParseOnUpdate reads back unchanged.
func (o OnUpdate) String() string {
	if o.Action == "signal" {
		return "signal:" + o.Signal
	}
	if o.Action == "" {
		return "none"
	}
	return o.Action
}

// ParseOnUpdate reads a secretd.on-update value; empty means none. Its
// error names the label and the value, and wraps errdefs.ErrInvalid.
func ParseOnUpdate(v string) (OnUpdate, error) {
	o, err := parseOnUpdate(v)
	if err != nil {
		return OnUpdate{}, errdefs.Errorf(errdefs.ErrInvalid, "label %s=%q: %v", LabelOnUpdate, v, err)
	}
	return o, nil
}

// ParseOnUpdateOption reads the on-update volume option; its error names
// the option and the value.
func ParseOnUpdateOption(v string) (OnUpdate, error) {
	o, err := parseOnUpdate(v)
	if err != nil {
		return OnUpdate{}, errdefs.Errorf(errdefs.ErrInvalid, "option %s=%q: %v", OptionOnUpdate, v, err)
	}
	return o, nil
}

func parseOnUpdate(v string) (OnUpdate, error) {
	v = strings.TrimSpace(v)
	switch {
	case v == "" || v == "none":
		return OnUpdate{Action: "none"}, nil
	case v == "restart":
		return OnUpdate{Action: "restart"}, nil
	case strings.HasPrefix(v, "signal:"):
		name := strings.ToUpper(strings.TrimPrefix(v, "signal:"))
		if !strings.HasPrefix(name, "SIG") {
			name = "SIG" + name
		}
		if unix.SignalNum(name) == 0 {
			return OnUpdate{}, fmt.Errorf("unknown signal %q: use none, signal:SIGNAME (signal:SIGHUP) or restart", strings.TrimPrefix(v, "signal:"))
		}
		return OnUpdate{Action: "signal", Signal: name}, nil
	default:
		return OnUpdate{}, fmt.Errorf("use none, signal:SIGNAME (signal:SIGHUP) or restart")
	}
}
