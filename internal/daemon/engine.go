package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"sync"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/system"
	dockerclient "github.com/docker/docker/client"

	"github.com/secretd/secretd/controller"
	"github.com/secretd/secretd/errdefs"
)

// engineVersionTimeout bounds each question about the engine's API
// version: the one at start, each one after while it does not answer, and
// the one after a refusal.
const engineVersionTimeout = 3 * time.Second

// engineRetryMax caps the pause between two questions while the engine
// does not answer (it starts at a tenth of a second and doubles).
const engineRetryMax = 5 * time.Second

// Engine is the Docker Engine client the controller follows the engine
// with. The docker client would negotiate the API version on its first
// request, under a lock that no request deadline bounds: while a starting
// dockerd restores its containers it answers nothing until their Mounts
// return, and a Mount's bounded lookup would wait behind the event
// stream's unbounded negotiation, for minutes. Guessing a version instead
// fails against an engine that refuses it (Engine 29.0-29.2 refuse below
// 1.44). So the version is settled here, in three steps:
//
//  1. At start, /_ping is asked with a deadline. Its answer fixes the
//     version, the lower of the engine's and the client's newest, in a
//     client made for it. DOCKER_API_VERSION (which the rootless
//     supervisor sets) fixes it without asking.
//  2. Until an answer comes, /_ping is asked again, each time with a
//     deadline, and every engine call fails closed with an error that
//     says so, after waiting at most one question for the answer.
//  3. A call the engine refuses for its version ("client version 1.41 is
//     too old. Minimum supported API version is 1.44") asks /_ping once
//     more and, if that changes the version, is made once more with it.
//
// A client, once made, never changes its version, so no request ever
// negotiates and none waits on another's negotiation.
type Engine struct {
	host    string
	base    []dockerclient.Opt // how to reach the engine, no version
	probe   *dockerclient.Client
	timeout time.Duration
	log     *slog.Logger

	mu      sync.Mutex
	cur     *dockerclient.Client // nil until the engine said its version
	lastErr error                // why it has not
	ready   chan struct{}        // closed once cur is set
	old     []*dockerclient.Client

	wake   chan struct{} // asks the settling loop to ask now
	renego chan struct{} // one renegotiation at a time
	stop   context.CancelFunc
	done   chan struct{}
}

var (
	_ controller.Engine  = (*Engine)(nil)
	_ controller.Actions = (*Engine)(nil)
)

// newEngine connects to the engine at host (empty: DOCKER_HOST or the
// default socket) and settles its API version (see Engine). It fails only
// on a malformed host; an engine that does not answer yet is asked again
// until ctx ends or Close.
func newEngine(ctx context.Context, host string, timeout time.Duration, log *slog.Logger) (*Engine, string, error) {
	base := []dockerclient.Opt{dockerclient.WithTLSClientConfigFromEnv(), dockerclient.WithHostFromEnv()}
	if host != "" {
		base = append(base, dockerclient.WithHost(host))
	}
	probe, err := dockerclient.NewClientWithOpts(base...)
	if err != nil {
		return nil, "", fmt.Errorf("--docker-host: %w", err)
	}
	lctx, stop := context.WithCancel(ctx)
	e := &Engine{
		host: probe.DaemonHost(), base: base, probe: probe, timeout: timeout, log: log,
		ready: make(chan struct{}), wake: make(chan struct{}, 1), renego: make(chan struct{}, 1),
		stop: stop, done: make(chan struct{}),
	}
	if v := os.Getenv("DOCKER_API_VERSION"); v != "" {
		c, err := dockerclient.NewClientWithOpts(append(base, dockerclient.WithVersion(v))...)
		if err != nil {
			return nil, "", fmt.Errorf("DOCKER_API_VERSION: %w", err)
		}
		e.set(c)
		close(e.done)
		return e, e.host, nil
	}
	if err := e.ask(ctx); err != nil {
		log.Warn("the Docker Engine did not tell its API version: engine calls fail until it does; asking again",
			"engine", e.host, "err", err)
		go e.settle(lctx)
	} else {
		close(e.done)
	}
	return e, e.host, nil
}

// Version is the API version engine calls use, "" while the engine has not
// said it.
func (e *Engine) Version() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cur == nil {
		return ""
	}
	return e.cur.ClientVersion()
}

// Close stops asking and closes the clients' idle connections.
func (e *Engine) Close() error {
	e.stop()
	<-e.done
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range append(e.old, e.cur, e.probe) {
		if c != nil {
			c.Close()
		}
	}
	return nil
}

// ask asks /_ping with a deadline and, on an answer, makes the client of
// the version it implies the current one.
func (e *Engine) ask(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, e.timeout)
	p, err := e.probe.Ping(pctx)
	cancel()
	if err == nil && p.APIVersion == "" {
		err = errors.New("its /_ping answer names no API version")
	}
	if err != nil {
		e.mu.Lock()
		e.lastErr = err
		e.mu.Unlock()
		return err
	}
	c, err := e.clientFor(p)
	if err != nil {
		return err
	}
	e.set(c)
	return nil
}

// clientFor makes a client of the version a ping answer implies: the
// lower of the engine's and the client's own newest.
func (e *Engine) clientFor(p types.Ping) (*dockerclient.Client, error) {
	c, err := dockerclient.NewClientWithOpts(e.base...)
	if err != nil {
		return nil, err
	}
	// Not shared yet: this negotiation waits on nothing.
	c.NegotiateAPIVersionPing(p)
	return c, nil
}

func (e *Engine) set(c *dockerclient.Client) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cur != nil {
		// Calls in flight finish on it; Close closes it.
		e.old = append(e.old, e.cur)
	} else {
		close(e.ready)
	}
	e.cur, e.lastErr = c, nil
}

// settle asks again, with backoff, until the engine answers or ctx ends.
// A call that finds no version wakes it, so the answer comes as soon as
// the engine gives it.
func (e *Engine) settle(ctx context.Context) {
	defer close(e.done)
	pause := 100 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.wake:
		case <-time.After(pause):
		}
		if e.ask(ctx) == nil {
			e.log.Info("the Docker Engine told its API version", "engine", e.host, "api_version", e.Version())
			return
		}
		pause = min(pause*2, engineRetryMax)
	}
}

// client returns the current client, waiting for the engine's answer at
// most one question long (and no longer than ctx).
func (e *Engine) client(ctx context.Context) (*dockerclient.Client, error) {
	e.mu.Lock()
	c := e.cur
	e.mu.Unlock()
	if c != nil {
		return c, nil
	}
	select {
	case e.wake <- struct{}{}:
	default:
	}
	t := time.NewTimer(e.timeout)
	defer t.Stop()
	select {
	case <-e.ready:
	case <-ctx.Done():
	case <-t.C:
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cur != nil {
		return e.cur, nil
	}
	return nil, errdefs.Errorf(errdefs.ErrUnavailable,
		"the Docker Engine at %s has not told its API version yet (%v): secretd keeps asking; check that dockerd runs and answers `docker version`",
		e.host, e.lastErr)
}

// versionRefusal matches the engine's refusal of a request's API version,
// in its own words (moby's version middleware).
var versionRefusal = regexp.MustCompile(`client version \S+ is too (old|new)\. (Minimum|Maximum) supported API version is`)

// renegotiate asks /_ping again after the engine refused used's version,
// and reports whether a client of another version is now current.
func (e *Engine) renegotiate(ctx context.Context, used *dockerclient.Client, refusal error) bool {
	select {
	case e.renego <- struct{}{}:
		defer func() { <-e.renego }()
	case <-ctx.Done():
		return false
	}
	e.mu.Lock()
	cur := e.cur
	e.mu.Unlock()
	if cur != used {
		return true // another call renegotiated meanwhile
	}
	pctx, cancel := context.WithTimeout(ctx, e.timeout)
	p, err := e.probe.Ping(pctx)
	cancel()
	if err != nil || p.APIVersion == "" {
		e.log.Warn("the Docker Engine refused secretd's API version and did not tell its own", "engine", e.host,
			"api_version", used.ClientVersion(), "refusal", refusal, "err", err)
		return false
	}
	c, err := e.clientFor(p)
	if err != nil || c.ClientVersion() == used.ClientVersion() {
		e.log.Error("the Docker Engine refuses the only API version secretd can speak to it", "engine", e.host,
			"api_version", used.ClientVersion(), "engine_api_version", p.APIVersion, "refusal", refusal)
		return false
	}
	e.set(c)
	e.log.Warn("the Docker Engine refused secretd's API version: speaking the one it now tells", "engine", e.host,
		"refused", used.ClientVersion(), "api_version", c.ClientVersion(), "refusal", refusal)
	return true
}

// call makes one engine call, once more after a renegotiation if the
// engine refused its version.
func call[T any](e *Engine, ctx context.Context, f func(*dockerclient.Client) (T, error)) (T, error) {
	c, err := e.client(ctx)
	if err != nil {
		var zero T
		return zero, err
	}
	v, err := f(c)
	if err != nil && versionRefusal.MatchString(err.Error()) && e.renegotiate(ctx, c, err) {
		if c, cerr := e.client(ctx); cerr == nil {
			return f(c)
		}
	}
	return v, err
}

// ContainerList lists containers (controller.Engine).
func (e *Engine) ContainerList(ctx context.Context, opts container.ListOptions) ([]container.Summary, error) {
	return call(e, ctx, func(c *dockerclient.Client) ([]container.Summary, error) { return c.ContainerList(ctx, opts) })
}

// ContainerInspect inspects a container (controller.Engine).
func (e *Engine) ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error) {
	return call(e, ctx, func(c *dockerclient.Client) (container.InspectResponse, error) { return c.ContainerInspect(ctx, id) })
}

// ImageInspect inspects an image (controller.Engine).
func (e *Engine) ImageInspect(ctx context.Context, id string, opts ...dockerclient.ImageInspectOption) (image.InspectResponse, error) {
	return call(e, ctx, func(c *dockerclient.Client) (image.InspectResponse, error) { return c.ImageInspect(ctx, id, opts...) })
}

// ContainerKill signals a container (controller.Actions).
func (e *Engine) ContainerKill(ctx context.Context, id, signal string) error {
	_, err := call(e, ctx, func(c *dockerclient.Client) (struct{}, error) { return struct{}{}, c.ContainerKill(ctx, id, signal) })
	return err
}

// ContainerRestart restarts a container (controller.Actions).
func (e *Engine) ContainerRestart(ctx context.Context, id string, opts container.StopOptions) error {
	_, err := call(e, ctx, func(c *dockerclient.Client) (struct{}, error) { return struct{}{}, c.ContainerRestart(ctx, id, opts) })
	return err
}

// Events subscribes to the engine's events (controller.Engine). A stream
// the engine refuses for its version renegotiates before its error is
// passed on, so the controller's next subscription speaks the new one.
func (e *Engine) Events(ctx context.Context, opts events.ListOptions) (<-chan events.Message, <-chan error) {
	c, err := e.client(ctx)
	if err != nil {
		errs := make(chan error, 1)
		errs <- err
		return nil, errs
	}
	msgs, inner := c.Events(ctx, opts)
	errs := make(chan error, 1)
	go func() {
		// The docker client sends exactly one error, then closes.
		err := <-inner
		if err != nil && versionRefusal.MatchString(err.Error()) {
			e.renegotiate(ctx, c, err)
		}
		errs <- err
	}()
	return msgs, errs
}

// ServerVersion asks the engine's version, which says whether it is Docker
// or Podman (controller).
func (e *Engine) ServerVersion(ctx context.Context) (types.Version, error) {
	return call(e, ctx, func(c *dockerclient.Client) (types.Version, error) { return c.ServerVersion(ctx) })
}

// Info returns the engine's information (for templates' .Node).
func (e *Engine) Info(ctx context.Context) (system.Info, error) {
	return call(e, ctx, func(c *dockerclient.Client) (system.Info, error) { return c.Info(ctx) })
}

// nodeInfo is what templates see of the host (.Node), from the engine's
// information, asked once: the engine's ID and name, and its OS type and
// architecture as `docker info` shows them.
type nodeInfo struct {
	engine *Engine

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
