// Package enginetest is the one fake Docker Engine of secretd's unit
// tests: a container list the test edits and event streams the test feeds,
// behind the engine interface the controller uses (controller.Engine) and
// the calls of on-update actions (controller.Actions). End-to-end tests use
// a real engine, and scale tests internal/enginesim.
//
// An engine made with one of enginesim's profiles sends events shaped as
// that engine version does: Engine 20.10's still carry the fields the API
// deprecated (status, id, from), Docker 29's (API 1.52) carry Type, Action
// and Actor only. Tests of event handling run against each of
// enginesim.Profiles.
package enginetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/secretd/secretd/internal/enginesim"
)

// Engine is a fake engine. Its zero value is not ready: use New.
type Engine struct {
	profile *enginesim.Profile

	mu         sync.Mutex
	containers []container.Summary
	listErr    error
	// volumeLists counts lists filtered by volume (the lookups of a
	// Mount), idLists lists filtered by ID (the lookups of new
	// containers); idGate, when set, holds each list by ID until the test
	// receives from it, and idErr fails lists by ID only.
	volumeLists, idLists int
	idGate               chan string
	idErr                error
	// volumeHook, when set, sees each list by volume's filter and answer
	// before the list returns them, and may hold it there.
	volumeHook func(volumes []string, answer []container.Summary)
	streams    []*Stream
	newStream  chan *Stream
	// images maps an image ID to its labels; imageErr fails inspects.
	images        map[string]map[string]string
	imageErr      error
	imageInspects int
	// hostnames maps a container ID to its hostname for inspects; an ID
	// not in it is not found. envs maps it to its environment.
	hostnames map[string]string
	envs      map[string][]string
	inspects  int
	// podman: inspects answer from the container list, with its mounts,
	// as Podman's compat API does.
	podman bool
	// version is what ServerVersion answers; nil fails it.
	version *types.Version
	// kills and restarts record the on-update actions asked, as
	// "ID SIGNAL" and "ID".
	kills, restarts []string
}

// New returns an engine with no containers whose events are shaped as
// profile p's engine sends them; with p nil, as the test built them.
func New(p *enginesim.Profile) *Engine {
	return &Engine{profile: p, newStream: make(chan *Stream, 16)}
}

// ContainerList answers as dockerd does for the filters the controller
// uses: volume (by name or destination) and id.
func (e *Engine) ContainerList(ctx context.Context, opts container.ListOptions) ([]container.Summary, error) {
	var vols, ids []string
	if opts.Filters.Len() > 0 {
		vols, ids = opts.Filters.Get("volume"), opts.Filters.Get("id")
	}
	if len(ids) > 0 {
		e.mu.Lock()
		e.idLists++
		gate := e.idGate
		e.mu.Unlock()
		if gate != nil {
			select {
			case gate <- ids[0]:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	out, hook, err := e.list(opts, vols, ids)
	if hook != nil && err == nil {
		hook(vols, out)
	}
	return out, err
}

// list is ContainerList's answer, taken under the lock, and the hook to
// show it to outside it.
func (e *Engine) list(opts container.ListOptions, vols, ids []string) ([]container.Summary, func([]string, []container.Summary), error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.listErr != nil {
		return nil, nil, e.listErr
	}
	if len(ids) > 0 && e.idErr != nil {
		return nil, nil, e.idErr
	}
	var hook func([]string, []container.Summary)
	if len(vols) > 0 {
		e.volumeLists++
		hook = e.volumeHook
	}
	var out []container.Summary
	for _, c := range e.containers {
		if !opts.All && c.State != container.StateRunning {
			continue
		}
		if len(ids) > 0 && !slices.Contains(ids, c.ID) {
			continue
		}
		if len(vols) > 0 && !slices.ContainsFunc(c.Mounts, func(m container.MountPoint) bool {
			return slices.Contains(vols, m.Name) || slices.Contains(vols, m.Destination)
		}) {
			continue
		}
		c.Mounts = slices.Clone(c.Mounts)
		out = append(out, c)
	}
	if opts.Limit > 0 && len(out) > opts.Limit {
		out = out[:opts.Limit]
	}
	return out, hook, nil
}

// ContainerInspect answers with the container's hostname and
// environment, set by SetHostnames and SetEnv; in Podman's mode, from the
// container list, with its name, labels and mounts.
func (e *Engine) ContainerInspect(_ context.Context, id string) (container.InspectResponse, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.inspects++
	if e.podman {
		return e.inspectListedLocked(id)
	}
	h, ok := e.hostnames[id]
	if !ok {
		return container.InspectResponse{}, fmt.Errorf("no such container: %s", id)
	}
	return container.InspectResponse{ContainerJSONBase: &container.ContainerJSONBase{ID: id}, Config: &container.Config{Hostname: h, Env: e.envs[id]}}, nil
}

// inspectListedLocked answers an inspect from the container list, as
// Podman's compat API does; e.mu is held.
func (e *Engine) inspectListedLocked(id string) (container.InspectResponse, error) {
	for _, c := range e.containers {
		if c.ID == id {
			return container.InspectResponse{
				ContainerJSONBase: &container.ContainerJSONBase{ID: c.ID, Name: c.Names[0], Image: c.ImageID},
				Config:            &container.Config{Labels: c.Labels, Image: c.Image},
				Mounts:            slices.Clone(c.Mounts),
			}, nil
		}
	}
	return container.InspectResponse{}, fmt.Errorf("no such container: %s", id)
}

// ServerVersion answers what SetVersion set, or fails when nothing was.
func (e *Engine) ServerVersion(context.Context) (types.Version, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.version == nil {
		return types.Version{}, errors.New("not told")
	}
	return *e.version, nil
}

// ImageInspect answers with the image's labels, set by SetImageLabels.
func (e *Engine) ImageInspect(_ context.Context, id string, _ ...client.ImageInspectOption) (image.InspectResponse, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.imageInspects++
	if e.imageErr != nil {
		return image.InspectResponse{}, e.imageErr
	}
	cfg := &dockerspec.DockerOCIImageConfig{}
	cfg.Labels = e.images[id]
	return image.InspectResponse{ID: id, Config: cfg}, nil
}

// Events opens a stream the test feeds; Next hands it to the test.
func (e *Engine) Events(_ context.Context, opts events.ListOptions) (<-chan events.Message, <-chan error) {
	s := &Stream{Opts: opts, profile: e.profile, msgs: make(chan events.Message), errs: make(chan error, 1)}
	e.mu.Lock()
	e.streams = append(e.streams, s)
	e.mu.Unlock()
	e.newStream <- s
	return s.msgs, s.errs
}

// ContainerKill records an on-update signal.
func (e *Engine) ContainerKill(_ context.Context, id, signal string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.kills = append(e.kills, id+" "+signal)
	return nil
}

// ContainerRestart records an on-update restart.
func (e *Engine) ContainerRestart(_ context.Context, id string, _ container.StopOptions) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.restarts = append(e.restarts, id)
	return nil
}

// Next returns the stream of the next subscription to events.
func (e *Engine) Next(t testing.TB) *Stream {
	t.Helper()
	select {
	case s := <-e.newStream:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("the controller did not subscribe to events")
		return nil
	}
}

// Set replaces the containers.
func (e *Engine) Set(cs ...container.Summary) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.containers = cs
}

// SetState changes one container's state.
func (e *Engine) SetState(id string, state container.ContainerState) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range e.containers {
		if e.containers[i].ID == id {
			e.containers[i].State = state
		}
	}
}

// SetListErr makes every list fail with err (nil: answer again).
func (e *Engine) SetListErr(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.listErr = err
}

// SetIDLists makes lists by ID wait for the test to receive from gate
// (when not nil), and fail with err (when not nil).
func (e *Engine) SetIDLists(gate chan string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.idGate, e.idErr = gate, err
}

// SetVolumeListHook calls hook with the filter and answer of each list by
// volume, before the list returns; a hook that blocks holds the list, as
// a slow engine would after it took its answer.
func (e *Engine) SetVolumeListHook(hook func(volumes []string, answer []container.Summary)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.volumeHook = hook
}

// SetImageLabels gives an image ID labels.
func (e *Engine) SetImageLabels(id string, labels map[string]string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.images == nil {
		e.images = map[string]map[string]string{}
	}
	e.images[id] = maps.Clone(labels)
}

// SetImageErr makes every image inspect fail with err (nil: answer again).
func (e *Engine) SetImageErr(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.imageErr = err
}

// SetHostnames sets the hostnames inspects answer, by container ID.
func (e *Engine) SetHostnames(h map[string]string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.hostnames = maps.Clone(h)
}

// SetEnv sets the environment an inspect of container id answers.
func (e *Engine) SetEnv(id string, env []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.envs == nil {
		e.envs = map[string][]string{}
	}
	e.envs[id] = slices.Clone(env)
}

// SetLabel sets a label of container id, as a test that edits a container
// in place wants.
func (e *Engine) SetLabel(id, key, value string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range e.containers {
		if e.containers[i].ID == id {
			l := maps.Clone(e.containers[i].Labels)
			if l == nil {
				l = map[string]string{}
			}
			l[key] = value
			e.containers[i].Labels = l
		}
	}
}

// SetPodman makes inspects answer from the container list, with its
// mounts, as Podman's compat API does.
func (e *Engine) SetPodman(on bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.podman = on
}

// SetVersion sets what ServerVersion answers; nil makes it fail.
func (e *Engine) SetVersion(v *types.Version) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.version = v
}

// Counts are the calls an engine has answered.
type Counts struct {
	// VolumeLists are lists filtered by volume, IDLists lists filtered by
	// ID, ImageInspects and Inspects the inspects of images and
	// containers.
	VolumeLists, IDLists, ImageInspects, Inspects int
	// Kills and Restarts are the on-update actions asked.
	Kills, Restarts []string
}

// Counts returns the calls answered so far.
func (e *Engine) Counts() Counts {
	e.mu.Lock()
	defer e.mu.Unlock()
	return Counts{VolumeLists: e.volumeLists, IDLists: e.idLists, ImageInspects: e.imageInspects, Inspects: e.inspects,
		Kills: slices.Clone(e.kills), Restarts: slices.Clone(e.restarts)}
}

// Stream is one subscription to events.
type Stream struct {
	// Opts are the options the subscriber asked with.
	Opts    events.ListOptions
	profile *enginesim.Profile
	msgs    chan events.Message
	errs    chan error
}

// Send hands m to the subscriber, shaped by the engine's profile (from
// its Type, Action and Actor), and fails the test if it is not read in
// time.
func (s *Stream) Send(t testing.TB, m events.Message) {
	t.Helper()
	if s.profile != nil {
		m = s.profile.Message(m.Type, m.Action, m.Actor)
	}
	select {
	case s.msgs <- m:
	case <-time.After(10 * time.Second):
		t.Fatalf("the controller does not read events (sending %s)", m.Action)
	}
}

// Sync returns once every event sent before it was handled: the
// controller reads the next message only after handling the previous one.
func (s *Stream) Sync(t testing.TB) {
	t.Helper()
	s.Send(t, events.Message{Type: events.ContainerEventType, Action: events.ActionDie, Actor: events.Actor{ID: "nobody"}})
}

// Break ends the stream with err, as a broken connection does.
func (s *Stream) Break(err error) { s.errs <- err }

// Container builds a container summary with labels and mounts.
func Container(id, name string, state container.ContainerState, created int64, labels map[string]string, mounts ...container.MountPoint) container.Summary {
	if labels == nil {
		labels = map[string]string{}
	}
	return container.Summary{ID: id, Names: []string{"/" + name}, State: state, Created: created, Labels: labels, ImageID: "sha256:busybox", Mounts: mounts}
}

// Volume is a mount of volume name of driver at dst.
func Volume(name, driver, dst string) container.MountPoint {
	return container.MountPoint{Type: "volume", Name: name, Destination: dst, Driver: driver}
}

// VolumeMount is the event dockerd sends after a driver's Mount, naming
// the container.
func VolumeMount(volume, containerID, driver string) events.Message {
	return events.Message{Type: events.VolumeEventType, Action: events.ActionMount, Actor: events.Actor{ID: volume,
		Attributes: map[string]string{"container": containerID, "driver": driver, "destination": "/run/secrets"}}}
}

// ContainerEvent is a container event; its attributes carry the
// container's labels, name and image, as dockerd's do.
func ContainerEvent(action events.Action, id string, attrs map[string]string) events.Message {
	return events.Message{Type: events.ContainerEventType, Action: action, Actor: events.Actor{ID: id, Attributes: maps.Clone(attrs)}}
}

// ContainerStart is a container's start event.
func ContainerStart(id, name string, labels map[string]string) events.Message {
	attrs := map[string]string{"name": name, "image": "busybox"}
	maps.Copy(attrs, labels)
	return ContainerEvent(events.ActionStart, id, attrs)
}
