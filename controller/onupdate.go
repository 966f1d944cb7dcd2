package controller

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// OnUpdate is what happens to a container after its secrets change.
type OnUpdate struct {
	// Action is "none", "signal" or "restart".
	Action string
	// Signal is the signal name for Action "signal", e.g. "SIGHUP".
	Signal string
}

// ParseOnUpdate reads the secretd.on-update label; empty means none.
func ParseOnUpdate(v string) (OnUpdate, error) {
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
			return OnUpdate{}, fmt.Errorf("label %s=%q: unknown signal %q", LabelOnUpdate, v, strings.TrimPrefix(v, "signal:"))
		}
		return OnUpdate{Action: "signal", Signal: name}, nil
	default:
		return OnUpdate{}, fmt.Errorf("label %s=%q: use none, signal:SIGNAME or restart", LabelOnUpdate, v)
	}
}
