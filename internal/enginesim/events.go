package enginesim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
)

// subBuffer is how many events a subscriber may fall behind before it is
// cut off. Publishing never blocks, so a slow reader shows up as lag in
// the events' own timestamps rather than as a slower emitter.
const subBuffer = 1 << 16

type sub struct {
	f    filters.Args
	ch   chan events.Message
	done chan struct{}
}

var eventFilters = map[string]bool{"type": true, "event": true, "container": true, "label": true}

// events streams JSON messages, one per line, flushed as they come, until
// the client goes away or BreakStreams.
func (s *Sim) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Has("since") || q.Has("until") {
		httpError(w, http.StatusBadRequest, "enginesim: since and until are not simulated")
		return
	}
	f, err := filters.FromJSON(q.Get("filters"))
	if err == nil {
		err = f.Validate(eventFilters)
	}
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	sb := &sub{f: f, ch: make(chan events.Message, subBuffer), done: make(chan struct{})}
	s.mu.Lock()
	s.subs[sb] = struct{}{}
	s.mu.Unlock()
	defer s.unsubscribe(sb)

	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	fl := w.(http.Flusher)
	fl.Flush()
	enc := json.NewEncoder(w)
	for {
		select {
		case <-r.Context().Done():
			return
		case <-sb.done:
			return
		case m := <-sb.ch:
			if enc.Encode(m) != nil {
				return
			}
			// One flush per burst rather than per event: what is queued
			// is already late.
			for more := true; more; {
				select {
				case m := <-sb.ch:
					if enc.Encode(m) != nil {
						return
					}
				default:
					more = false
				}
			}
			fl.Flush()
		}
	}
}

func (s *Sim) unsubscribe(sb *sub) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.subs[sb]; ok {
		delete(s.subs, sb)
		close(sb.done)
	}
}

// BreakStreams ends every open event stream, as an engine restart does;
// clients see EOF.
func (s *Sim) BreakStreams() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sb := range s.subs {
		delete(s.subs, sb)
		close(sb.done)
	}
}

// Subscribers is how many event streams are open.
func (s *Sim) Subscribers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subs)
}

func (sb *sub) matches(m events.Message) bool {
	f := sb.f
	if f.Contains("type") && !f.ExactMatch("type", string(m.Type)) {
		return false
	}
	if f.Contains("event") && !f.ExactMatch("event", string(m.Action)) {
		return false
	}
	if f.Contains("container") && !f.FuzzyMatch("container", m.Actor.ID) && !f.ExactMatch("container", m.Actor.Attributes["name"]) {
		return false
	}
	return f.MatchKVList("label", m.Actor.Attributes)
}

// emitLocked stamps and publishes one container event. Attributes are
// dockerd's: the labels, image and name, plus exitCode or oldName.
func (s *Sim) emitLocked(action events.Action, c *ctr, extra map[string]string) {
	attrs := map[string]string{"image": "busybox", "name": c.name}
	for k, v := range c.labels {
		attrs[k] = v
	}
	for k, v := range extra {
		attrs[k] = v
	}
	m := s.opts.Profile.Message(events.ContainerEventType, action, events.Actor{ID: c.id, Attributes: attrs})
	for sb := range s.subs {
		if !sb.matches(m) {
			continue
		}
		select {
		case sb.ch <- m:
		default:
			delete(s.subs, sb)
			close(sb.done)
			s.dropped++
		}
	}
}

func (s *Sim) find(ref string) (*ctr, error) {
	c := s.findLocked(ref)
	if c == nil {
		return nil, fmt.Errorf("enginesim: no such container: %s", ref)
	}
	return c, nil
}

// Rename renames a container and emits "rename".
func (s *Sim) Rename(ref, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.find(ref)
	if err != nil {
		return err
	}
	s.renameLocked(c, name)
	return nil
}

func (s *Sim) renameLocked(c *ctr, name string) {
	old := c.name
	c.name = name
	s.emitLocked(events.ActionRename, c, map[string]string{"oldName": "/" + old})
}

// Die marks a container exited and emits "die".
func (s *Sim) Die(ref string, exitCode int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.find(ref)
	if err != nil {
		return err
	}
	s.dieLocked(c, exitCode)
	return nil
}

func (s *Sim) dieLocked(c *ctr, exitCode int) {
	c.state, c.exitCode = container.StateExited, exitCode
	s.emitLocked(events.ActionDie, c, map[string]string{"exitCode": strconv.Itoa(exitCode)})
}

// StartContainer marks a container running and emits "start".
func (s *Sim) StartContainer(ref string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.find(ref)
	if err != nil {
		return err
	}
	s.startLocked(c)
	return nil
}

func (s *Sim) startLocked(c *ctr) {
	c.state, c.exitCode = container.StateRunning, 0
	s.emitLocked(events.ActionStart, c, nil)
}

// Destroy removes a container and emits "destroy".
func (s *Sim) Destroy(ref string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.find(ref)
	if err != nil {
		return err
	}
	s.destroyLocked(c)
	return nil
}

func (s *Sim) destroyLocked(c *ctr) {
	delete(s.byID, c.id)
	for i, o := range s.order {
		if o == c {
			s.order = append(s.order[:i], s.order[i+1:]...)
			break
		}
	}
	s.emitLocked(events.ActionDestroy, c, nil)
}

// Run creates and starts a new container, emitting "create" and "start".
func (s *Sim) Run() Container {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runLocked()
}

func (s *Sim) runLocked() Container {
	c := s.addLocked(randomID(), container.StateCreated)
	s.emitLocked(events.ActionCreate, c, nil)
	s.startLocked(c)
	return c.public()
}

// Create adds a container that is created but not started, whose anonymous
// volume is the one named, and emits "create": the first half of a
// `docker run`, after dockerd had the driver create the volume. Start it
// with StartContainer.
func (s *Sim) Create(volume string) Container {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.addLocked(volume, container.StateCreated)
	s.emitLocked(events.ActionCreate, c, nil)
	return c.public()
}

// BurstOptions shape a stream of events.
type BurstOptions struct {
	// Rate is events per second, Duration how long to keep it up.
	Rate     int
	Duration time.Duration
	// Mix is the sequence of actions, repeated: e.g. eight renames, a die
	// and a destroy. Supported: rename, die, start, destroy. A destroyed
	// container is replaced by a new one (create and start, not counted),
	// so the fleet keeps its size.
	Mix []events.Action
	// Keep protects containers from die and destroy, e.g. those a test
	// holds real mounts for.
	Keep func(id string) bool
}

// Burst emits events at opts.Rate until opts.Duration has passed or ctx
// ends, and returns how many of each action it emitted. Targets are
// random; an action with no eligible target becomes a rename.
func (s *Sim) Burst(ctx context.Context, opts BurstOptions) (map[events.Action]int, error) {
	if opts.Rate <= 0 || len(opts.Mix) == 0 {
		return nil, fmt.Errorf("enginesim: Burst needs a rate and a mix")
	}
	for _, a := range opts.Mix {
		switch a {
		case events.ActionRename, events.ActionDie, events.ActionStart, events.ActionDestroy:
		default:
			return nil, fmt.Errorf("enginesim: Burst cannot emit %q", a)
		}
	}
	keep := opts.Keep
	if keep == nil {
		keep = func(string) bool { return false }
	}
	counts := map[events.Action]int{}
	total := int(float64(opts.Rate) * opts.Duration.Seconds())
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	sent := 0
	for sent < total {
		// Catch up on every event due by now, so a late tick makes a
		// bigger burst instead of a lower rate.
		due := min(total, int(time.Since(start).Seconds()*float64(opts.Rate))+1)
		s.mu.Lock()
		for ; sent < due; sent++ {
			a := s.burstOneLocked(opts.Mix[sent%len(opts.Mix)], keep)
			counts[a]++
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return counts, ctx.Err()
		case <-tick.C:
		}
	}
	return counts, nil
}

func (s *Sim) burstOneLocked(a events.Action, keep func(string) bool) events.Action {
	if len(s.order) == 0 {
		return ""
	}
	pick := func(ok func(*ctr) bool) *ctr {
		for range 64 {
			if c := s.order[s.rng.IntN(len(s.order))]; ok(c) {
				return c
			}
		}
		return nil
	}
	switch a {
	case events.ActionDie:
		if c := pick(func(c *ctr) bool { return c.state == container.StateRunning && !keep(c.id) }); c != nil {
			s.dieLocked(c, 137)
			return a
		}
	case events.ActionStart:
		if c := pick(func(c *ctr) bool { return c.state == container.StateExited }); c != nil {
			s.startLocked(c)
			return a
		}
	case events.ActionDestroy:
		if c := pick(func(c *ctr) bool { return !keep(c.id) }); c != nil {
			s.destroyLocked(c)
			s.runLocked()
			return a
		}
	}
	s.seq++
	s.renameLocked(s.order[s.rng.IntN(len(s.order))], fmt.Sprintf("sim-renamed-%07d", s.seq))
	return events.ActionRename
}
