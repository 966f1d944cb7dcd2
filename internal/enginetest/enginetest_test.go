package enginetest

import (
	"context"
	"testing"

	"github.com/docker/docker/api/types/events"

	"github.com/secretd/secretd/internal/enginesim"
)

// TestSendShapesEvents: an engine of Engine 20.10's profile fills the
// deprecated fields of container events only; Docker 29's sends none of
// them; an engine without a profile sends what the test built.
func TestSendShapesEvents(t *testing.T) {
	start := ContainerStart("c1", "web", nil)
	mount := VolumeMount("v1", "c1", "secretd")
	built := start
	built.Status = "as built"
	for _, tc := range []struct {
		p                *enginesim.Profile
		m                events.Message
		status, id, from string
	}{
		{&enginesim.Docker2010, start, "start", "c1", "busybox"},
		{&enginesim.Docker2010, mount, "", "", ""},
		{&enginesim.Docker29, start, "", "", ""},
		{&enginesim.Docker29, built, "", "", ""},
		{nil, built, "as built", "", ""},
	} {
		e := New(tc.p)
		msgs, _ := e.Events(context.Background(), events.ListOptions{})
		s := e.Next(t)
		recv := make(chan events.Message, 1)
		go func() { recv <- <-msgs }()
		s.Send(t, tc.m)
		got := <-recv
		if got.Status != tc.status || got.ID != tc.id || got.From != tc.from {
			t.Errorf("%v %s %s: status %q id %q from %q, want %q %q %q", tc.p, tc.m.Type, tc.m.Action, got.Status, got.ID, got.From, tc.status, tc.id, tc.from)
		}
		if got.Type != tc.m.Type || got.Action != tc.m.Action || got.Actor.ID != tc.m.Actor.ID {
			t.Errorf("%v: the event itself changed: %+v", tc.p, got)
		}
	}
}
