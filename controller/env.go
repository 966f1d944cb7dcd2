package controller

import (
	"context"
	"fmt"
	"slices"
	"sync"
)

// maxEnvs bounds the environments kept, as maxHostnames bounds hostnames.
const maxEnvs = 4096

// envs keeps the environment of containers whose templates read it (env
// "VAR"), by container ID. The container list a Mount reads does not carry
// it, and an inspect during a start waits on the container's lock, which
// the start holds while it mounts: so it is read off the start path, by an
// inspect after a Mount that needed it, for the container's later Mounts
// and rotations. It may hold credentials: it is never logged.
type envs struct {
	mu    sync.Mutex
	m     map[string][]string
	order []string
}

// errEnvUnknown is a container's environment not read yet.
var errEnvUnknown = fmt.Errorf("secretd reads a container's environment by an inspect, which waits for the container's start to end: it is being read now; start the container again (docker start), or read the value from a secret, a config or a label instead")

// get returns a container's environment, or errEnvUnknown.
func (e *envs) get(id string) ([]string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	env, ok := e.m[id]
	if !ok {
		return nil, errEnvUnknown
	}
	return env, nil
}

func (e *envs) set(id string, env []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		e.m = map[string][]string{}
	}
	if _, ok := e.m[id]; !ok {
		for len(e.m) >= maxEnvs && len(e.order) > 0 {
			delete(e.m, e.order[0])
			e.order = e.order[1:]
		}
		e.order = append(e.order, id)
	}
	e.m[id] = slices.Clone(env)
}

func (e *envs) drop(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.m[id]; !ok {
		return
	}
	delete(e.m, id)
	e.order = slices.DeleteFunc(e.order, func(o string) bool { return o == id })
}

// learnEnv reads a container's environment behind the caller, for its
// next Mount: a Mount that needed it could not wait for it.
func (b *binding) learnEnv(ctx context.Context, id string) {
	if id == "" || b.engine == nil {
		return
	}
	b.learning.Add(1)
	go func() {
		defer b.learning.Done()
		ictx, cancel := context.WithTimeout(ctx, createLookupTimeout)
		defer cancel()
		ctr, err := b.engine.ContainerInspect(ictx, id)
		if err != nil || ctr.Config == nil {
			b.log.Debug("container environment not learned", "container", shortID(id), "err", err)
			return
		}
		b.envs.set(id, ctr.Config.Env)
		b.log.Debug("container environment learned", "container", shortID(id))
	}()
}
