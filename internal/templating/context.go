package templating

// Context is what a template sees as its data ("."): Swarm's template
// context (moby/swarmkit template.Context), field for field, filled from a
// standalone container and its host (docs/templates.md says how). It has
// no methods: a template can only read it.
type Context struct {
	Service Service
	Node    Node
	Task    Task
}

// Service is .Service: for a compose container its compose service, for
// any other container the container itself.
type Service struct {
	ID     string
	Name   string
	Labels map[string]string
}

// Node is .Node: the host the container runs on.
type Node struct {
	ID       string
	Hostname string
	Platform Platform
}

// Platform is .Node.Platform, as the engine reports it (OS "linux",
// Architecture as uname -m says, "x86_64").
type Platform struct {
	Architecture string
	OS           string
}

// Task is .Task: the container.
type Task struct {
	ID   string
	Name string
	Slot string
}

// Compose labels the compose tools put on the containers they create.
const (
	LabelComposeProject = "com.docker.compose.project"
	LabelComposeService = "com.docker.compose.service"
	LabelComposeNumber  = "com.docker.compose.container-number"
)

// Container is what NewContext needs to know of a container.
type Container struct {
	ID string
	// Name is the container's name, without the engine's leading "/".
	Name   string
	Labels map[string]string
}

// NewContext maps a standalone container and its host onto Swarm's
// context:
//
//   - .Task.ID and .Task.Name are the container's ID and name;
//   - .Service is the compose service of a compose container (Name
//     PROJECT_SERVICE, as `docker stack deploy` names services, and an ID
//     made from that name, the same for every replica and every
//     recreation), else the container itself (its ID and name);
//     .Service.Labels are the container's labels;
//   - .Task.Slot is a compose container's number, else the node's ID, as
//     Swarm gives a task without a slot (a global service's);
//   - .Node is the host.
func NewContext(c Container, node Node) Context {
	ctx := Context{Node: node}
	ctx.Task.ID, ctx.Task.Name = c.ID, c.Name
	ctx.Service.ID, ctx.Service.Name, ctx.Service.Labels = c.ID, c.Name, c.Labels
	if ctx.Service.Labels == nil {
		ctx.Service.Labels = map[string]string{}
	}
	ctx.Task.Slot = node.ID
	project, service := c.Labels[LabelComposeProject], c.Labels[LabelComposeService]
	if project != "" && service != "" {
		ctx.Service.Name = project + "_" + service
		ctx.Service.ID = ServiceID(ctx.Service.Name)
		if n := c.Labels[LabelComposeNumber]; n != "" {
			ctx.Task.Slot = n
		}
	}
	return ctx
}
