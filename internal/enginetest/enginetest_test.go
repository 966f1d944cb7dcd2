package enginetest

import (
	"testing"

	"github.com/docker/docker/api/types/events"
)

// TestShape: an engine before API 1.52 fills the deprecated fields of
// container events only; Docker 29's sends none of them.
func TestShape(t *testing.T) {
	start := ContainerStart("c1", "web", nil)
	mount := VolumeMount("v1", "c1", "secretd")
	for _, tc := range []struct {
		p                Profile
		m                events.Message
		status, id, from string
	}{
		{Legacy, start, "start", "c1", "busybox"},
		{Legacy, mount, "", "", ""},
		{API152, start, "", "", ""},
		{API152, Legacy.Shape(start), "", "", ""},
		{AsSent, start, "", "", ""},
		{AsSent, Legacy.Shape(start), "start", "c1", "busybox"},
	} {
		got := tc.p.Shape(tc.m)
		if got.Status != tc.status || got.ID != tc.id || got.From != tc.from {
			t.Errorf("%s %s %s: status %q id %q from %q, want %q %q %q", tc.p, tc.m.Type, tc.m.Action, got.Status, got.ID, got.From, tc.status, tc.id, tc.from)
		}
		if got.Type != tc.m.Type || got.Action != tc.m.Action || got.Actor.ID != tc.m.Actor.ID {
			t.Errorf("%s: the event itself changed: %+v", tc.p, got)
		}
	}
}
