package controller

import (
	"context"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/secretd/secretd/declaration"
)

// Engine is the part of the Docker Engine API the controller uses; the
// docker client satisfies it, and unit tests use a fake.
type Engine interface {
	ContainerList(ctx context.Context, opts container.ListOptions) ([]container.Summary, error)
	ContainerInspect(ctx context.Context, containerID string) (container.InspectResponse, error)
	Events(ctx context.Context, opts events.ListOptions) (<-chan events.Message, <-chan error)
	ImageInspect(ctx context.Context, imageID string, opts ...client.ImageInspectOption) (image.InspectResponse, error)
}

// Labels a container uses to talk to secretd.
const (
	// LabelSecrets declares the secrets of a volume created with the
	// container that carries no secrets option of its own.
	LabelSecrets = "secretd.secrets"
	// LabelConfigs declares the configs of such a volume, in the same
	// syntax.
	LabelConfigs = "secretd.configs"
	// LabelOnUpdate says what happens when a mounted secret rotates.
	LabelOnUpdate = declaration.LabelOnUpdate
)

// engineTimeout bounds every engine call made off the Mount path (in-use
// checks, container updates): a hung engine must turn into an error.
const engineTimeout = 3 * time.Second

// listNone is the cheapest list the engine answers: a liveness probe.
var listNone = container.ListOptions{Limit: 1}
