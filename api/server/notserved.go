package server

import (
	"fmt"
	"net/http"
	"strings"
)

// engineOnly names, by the first element of their path, the Docker Engine
// API's endpoints that secretd does not serve, as what they hold. The
// docker CLI pointed at secretd (`docker --context secretd ps`) reaches
// them: it gets an answer that says where to go instead of "page not found".
var engineOnly = map[string]string{
	"containers":   "containers",
	"exec":         "containers",
	"commit":       "images",
	"images":       "images",
	"build":        "image builds",
	"session":      "image builds",
	"grpc":         "image builds",
	"distribution": "registries",
	"auth":         "registries",
	"networks":     "networks",
	"volumes":      "volumes",
	"plugins":      "plugins",
	"info":         "the engine's information",
	"system":       "the engine's information",
	"events":       "the engine's events",
}

// swarmOnly are Swarm's endpoints other than secrets and configs: secretd answers
// /_ping as a Swarm manager only so that the docker CLI shows its secret
// commands.
var swarmOnly = map[string]string{
	"swarm":    "a swarm",
	"nodes":    "Swarm nodes",
	"services": "Swarm services",
	"tasks":    "Swarm tasks",
}

// notServed answers every request no route takes. An Engine endpoint
// secretd does not serve gets 421 Misdirected Request (the request went to
// the wrong server) with a message in the Engine's error shape, which the
// docker CLI prints as "Error response from daemon: ..."; anything else
// gets the Engine's 404. A 404 would not do for the Engine's endpoints: the
// docker CLI reads a 404 from `docker run` as a missing image, and goes on
// to pull it.
func (s *Server) notServed(w http.ResponseWriter, r *http.Request) {
	first, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if what, ok := engineOnly[first]; ok {
		writeError(w, http.StatusMisdirectedRequest, fmt.Sprintf("this is secretd, which serves secrets and configs only (docker secret ..., docker config ...), not %s: "+
			"run the command against the Docker Engine, in its own docker context (docker --context default ...) "+
			"or without DOCKER_HOST set to secretd's socket", what))
		return
	}
	if what, ok := swarmOnly[first]; ok {
		writeError(w, http.StatusMisdirectedRequest, fmt.Sprintf("this is secretd, which serves secrets and configs only (docker secret ..., docker config ...), not %s: "+
			"it is not a Swarm manager, and answers as one only so that the docker CLI offers its secret and config commands", what))
		return
	}
	writeError(w, http.StatusNotFound, "page not found")
}
