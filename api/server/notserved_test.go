package server_test

import (
	"context"
	"strings"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
)

// TestEngineEndpointsSayWhereToGo: the docker CLI pointed at secretd
// (`docker --context secretd ps`, `run`, `images`) gets an error that says
// secretd serves secrets and where containers are, not "page not found";
// and not a 404, which `docker run` would read as a missing image to pull.
// Paths that are no one's stay the Engine's 404.
func TestEngineEndpointsSayWhereToGo(t *testing.T) {
	e := newEnv(t, envOpts{})
	const engine = "this is secretd, which serves secrets and configs only (docker secret ..., docker config ...), not "
	const where = ": run the command against the Docker Engine, in its own docker context (docker --context default ...) or without DOCKER_HOST set to secretd's socket"
	for _, c := range []struct{ method, path, what string }{
		{"GET", "/v1.41/containers/json", "containers"},
		{"POST", "/v1.41/containers/create", "containers"},
		{"GET", "/v1.24/images/json", "images"},
		{"POST", "/images/create?fromImage=busybox", "images"},
		{"POST", "/v1.41/build", "image builds"},
		{"GET", "/v1.41/info", "the engine's information"},
		{"GET", "/v1.41/volumes", "volumes"},
		{"GET", "/v1.41/networks", "networks"},
	} {
		e.refused(c.method, c.path, nil, 421, engine+c.what+where)
	}
	e.refused("GET", "/v1.41/services", nil, 421, engine+"Swarm services: it is not a Swarm manager, and answers as one only so that the docker CLI offers its secret and config commands")
	e.refused("GET", "/v1.41/nodes", nil, 421, engine+"Swarm nodes: it is not a Swarm manager, and answers as one only so that the docker CLI offers its secret and config commands")
	for _, p := range []string{"/v1.41/nothing", "/secretd/lock", "/containersx/json"} {
		e.refused("GET", p, nil, 404, msgNoPage)
	}

	// The Docker Go client, as the docker CLI uses it.
	c := dockerClient(t, e.srv)
	ctx := context.Background()
	_, err := c.ContainerList(ctx, container.ListOptions{})
	if err == nil || cerrdefs.IsNotFound(err) || !strings.Contains(err.Error(), "Error response from daemon: "+engine+"containers: run the command against the Docker Engine") {
		t.Errorf("ContainerList: %v", err)
	}
	_, err = c.ContainerCreate(ctx, &container.Config{Image: "busybox"}, nil, nil, nil, "")
	if err == nil || cerrdefs.IsNotFound(err) {
		t.Errorf("ContainerCreate: %v; want an error the CLI does not take for a missing image", err)
	}
	_, err = c.ImageList(ctx, image.ListOptions{})
	if err == nil || !strings.Contains(err.Error(), engine+"images") {
		t.Errorf("ImageList: %v", err)
	}
}
