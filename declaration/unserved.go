package declaration

import (
	"log/slog"
	"strings"

	"github.com/docker/docker/api/types/container"
)

// labelSecrets is the label that declares a container's secrets
// (controller.LabelSecrets).
const labelSecrets = "secretd.secrets"

// labelConfigs declares its configs (controller.LabelConfigs).
const labelConfigs = "secretd.configs"

// WarnUnserved logs a warning naming the container when it declares
// secrets with the secretd.secrets label but mounts no volume of a secretd
// driver (ours tells a driver name), and reports whether it did. Such a
// container starts without /run/secrets, and nothing else says so: a
// compose file run by docker-compose rather than `secretd compose` is the
// usual way to get one.
func WarnUnserved(log *slog.Logger, c container.Summary, ours func(driver string) bool) bool {
	_, secrets := c.Labels[labelSecrets]
	_, configs := c.Labels[labelConfigs]
	if !secrets && !configs {
		return false
	}
	for _, m := range c.Mounts {
		if m.Type == "volume" && ours(m.Driver) {
			return false
		}
	}
	name := c.ID
	if len(c.Names) > 0 {
		name = strings.TrimPrefix(c.Names[0], "/")
	}
	log.Warn("container declares secrets with the "+labelSecrets+" label but mounts no secretd volume: it has no secrets; mount one (secretd run, secretd compose)",
		"container", name, "container_id", c.ID)
	return true
}
