package enginesim

import (
	"time"

	"github.com/docker/docker/api/types/events"
)

// Profile is what one Docker Engine version shows a client, as far as
// secretd's controller can tell: the API versions it answers and the shape
// of its events.
type Profile struct {
	// Name names the engine version, as in "Engine 29.0".
	Name string
	// APIVersion is what /_ping and /version announce: the newest version
	// a request may use. MinAPIVersion is the oldest; requests outside
	// the two are refused with dockerd's 400.
	APIVersion, MinAPIVersion string
	// LegacyEventFields sends the deprecated status, id and from of
	// container and image events, as engines before API 1.52 do.
	LegacyEventFields bool
}

// The profiles the controller is tested and benchmarked against.
var (
	// Docker2010 is Debian's Engine 20.10: API 1.41, every event with the
	// legacy fields.
	Docker2010 = Profile{Name: "Engine 20.10", APIVersion: "1.41", MinAPIVersion: "1.12", LegacyEventFields: true}
	// Docker29 is Engine 29.0-29.2: API 1.52, clients below 1.44 refused,
	// events with only Type, Action, Actor, scope and the times. A real
	// Engine 29 still sends the legacy fields to a client that asks at a
	// version below 1.52; the simulator leaves them out at every version,
	// so a reader that needs them fails here.
	Docker29 = Profile{Name: "Engine 29.0", APIVersion: "1.52", MinAPIVersion: "1.44"}
	// Profiles lists them, oldest first.
	Profiles = []Profile{Docker2010, Docker29}
)

// Message builds an event as the profile's engine sends it, stamped now.
func (p Profile) Message(typ events.Type, action events.Action, actor events.Actor) events.Message {
	now := time.Now()
	m := events.Message{Type: typ, Action: action, Actor: actor, Scope: "local", Time: now.Unix(), TimeNano: now.UnixNano()}
	if p.LegacyEventFields {
		switch typ {
		case events.ContainerEventType:
			m.Status, m.ID, m.From = string(action), actor.ID, actor.Attributes["image"]
		case events.ImageEventType:
			m.Status, m.ID = string(action), actor.ID
		}
	}
	return m
}
