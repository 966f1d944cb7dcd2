// Package controller delivers secrets into containers and keeps track of
// them: it serves the volume driver's Mount and Unmount, keeps the task
// table, follows the Docker Engine's event stream and resyncs with the
// engine after any break, wiping mounts that no running container owns.
package controller

import (
	"context"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
)

// Engine is the part of the Docker Engine API the controller uses; the
// docker client satisfies it, and unit tests use a fake.
type Engine interface {
	ContainerList(ctx context.Context, opts container.ListOptions) ([]container.Summary, error)
	Events(ctx context.Context, opts events.ListOptions) (<-chan events.Message, <-chan error)
}

// Labels a container uses to talk to secretd.
const (
	// LabelSecrets declares the container's secrets, for anonymous volumes.
	LabelSecrets = "secretd.secrets"
	// LabelOnUpdate says what happens when a mounted secret rotates.
	LabelOnUpdate = "secretd.on-update"
)

// Volumes tells the controller the declaration stored on a named volume.
type Volumes interface {
	// Declaration returns the volume's "secrets" option, "" if it has none.
	Declaration(volume string) string
}

// listNone is the cheapest list the engine answers: a liveness probe.
var listNone = container.ListOptions{Limit: 1}
