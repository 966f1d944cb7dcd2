package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/docker/docker/api/types"
	dockerclient "github.com/docker/docker/client"

	"github.com/secretd/secretd/controller"
)

// minAPIVersion is the API version of Docker Engine 20.10, the oldest
// engine secretd supports: the version used when the engine does not say
// its own at start.
const minAPIVersion = "1.41"

// engineVersionTimeout bounds the one question about the engine's API
// version, asked at start.
const engineVersionTimeout = 3 * time.Second

// newEngine connects to the engine and fixes the API version once, here.
// The docker client would otherwise negotiate on its first request, under
// a lock that no request deadline bounds: while a starting dockerd restores
// its containers it answers nothing until their Mounts return, and a
// Mount's bounded engine lookup would wait behind the event stream's
// unbounded negotiation, for minutes. So the version is asked with a
// deadline and, failing an answer, pinned to minAPIVersion; no request
// ever negotiates. DOCKER_API_VERSION (which the rootless supervisor sets)
// pins it without asking.
func newEngine(ctx context.Context, host string, timeout time.Duration, log *slog.Logger) (*dockerclient.Client, string, error) {
	opts := []dockerclient.Opt{dockerclient.FromEnv}
	if host != "" {
		opts = append(opts, dockerclient.WithHost(host))
	}
	c, err := dockerclient.NewClientWithOpts(opts...)
	if err != nil {
		return nil, "", fmt.Errorf("--docker-host: %w", err)
	}
	if os.Getenv("DOCKER_API_VERSION") == "" {
		pctx, cancel := context.WithTimeout(ctx, timeout)
		p, err := c.Ping(pctx)
		cancel()
		if err != nil || p.APIVersion == "" {
			log.Warn("the Docker Engine did not tell its API version in time: using the version of Engine 20.10",
				"engine", c.DaemonHost(), "api_version", minAPIVersion, "err", err)
			p = types.Ping{APIVersion: minAPIVersion}
		}
		c.NegotiateAPIVersionPing(p)
	}
	return c, c.DaemonHost(), nil
}

// nodeInfo is what templates see of the host (.Node), from the engine's
// information, asked once: the engine's ID and name, and its OS type and
// architecture as `docker info` shows them.
type nodeInfo struct {
	engine *dockerclient.Client

	mu   sync.Mutex
	node *controller.Node
}

func (n *nodeInfo) get(ctx context.Context) (controller.Node, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.node != nil {
		return *n.node, nil
	}
	ictx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	info, err := n.engine.Info(ictx)
	if err != nil {
		return controller.Node{}, fmt.Errorf("a template reads the node, and the Docker Engine did not answer what it is (%w): try again", err)
	}
	node := controller.Node{ID: info.ID, Hostname: info.Name}
	node.Platform.OS, node.Platform.Architecture = info.OSType, info.Architecture
	n.node = &node
	return node, nil
}
