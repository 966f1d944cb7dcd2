package controller_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"

	"github.com/secretd/secretd/controller"
)

func created(id string) events.Message {
	return events.Message{Type: events.ContainerEventType, Action: events.ActionCreate, Actor: events.Actor{ID: id}}
}

// setIDGate holds every lookup of a new container until the test
// receives from gate; nil lets them through.
func (f *fakeEngine) setIDGate(gate chan string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.idGate = gate
}

// mountAsync starts a Mount and returns where its error will come.
func (e *env) mountAsync(volume, mountID string) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := e.ctrl.Mount(context.Background(), volume, mountID)
		done <- err
	}()
	return done
}

// counts returns the engine lookups made so far: by Mounts, and of new
// containers.
func (f *fakeEngine) counts() (mountLookups, createLookups int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.volumeLists, f.idLists
}

// following runs the event loop and returns its stream after the first
// resync.
func (e *env) following(t *testing.T) *stream {
	t.Helper()
	e.start(t)
	s := e.engine.next(t)
	waitFor(t, "the first resync", func() bool { return resyncs(e.ctrl) == 1 })
	return s
}

// The container of a label-declared anonymous volume is learned from its
// create, so its Mount asks the engine nothing; only the first Mount.
func TestBornVolumeMountAsksNoEngine(t *testing.T) {
	e := newEnv(t, time.Nanosecond)
	e.secret(t, "s1", "one")
	s := e.following(t)

	e.ctrl.VolumeBorn("v1")
	e.engine.set(ctr("id1", "web", container.StateCreated, 1, "s1", "v1"))
	s.send(t, created("id1"))
	s.sync(t)
	dir := e.mount(t, "v1", "m1")
	if lists, lookups := e.engine.counts(); lists != 0 || lookups != 1 {
		t.Errorf("%d engine lookups by the Mount of a born volume and %d at its container's create, want 0 and 1", lists, lookups)
	}
	if got := taskNames(e.ctrl); len(got) != 1 || got[0] != "web@m1" {
		t.Errorf("tasks %v, want web@m1", got)
	}
	if got := readFiles(t, dir); got["s1"] != "one" {
		t.Errorf("mount holds %v", got)
	}
	if err := e.ctrl.Unmount("v1", "m1"); err != nil {
		t.Fatal(err)
	}
	// A restart of the container asks.
	e.mount(t, "v1", "m2")
	if lists, _ := e.engine.counts(); lists != 1 {
		t.Errorf("%d engine lists after the second Mount, want 1", lists)
	}
	if err := e.ctrl.Unmount("v1", "m2"); err != nil {
		t.Fatal(err)
	}

	// A volume no Create was seen for (a named one, made before) asks.
	e.engine.set(ctr("id2", "api", container.StateCreated, 2, "s1", "named"))
	s.send(t, created("id2"))
	s.sync(t)
	e.mount(t, "named", "m3")
	if lists, _ := e.engine.counts(); lists != 2 {
		t.Errorf("%d engine lists after a Mount of an unborn volume, want 2", lists)
	}
}

// A Mount that comes before the lookup of its container is done waits for
// it rather than asking the engine.
func TestBornVolumeMountWaitsForTheLookup(t *testing.T) {
	e := newEnv(t, time.Nanosecond)
	e.secret(t, "s1", "one")
	s := e.following(t)
	gate := make(chan string)
	e.engine.setIDGate(gate)

	e.ctrl.VolumeBorn("v1")
	e.engine.set(ctr("id1", "web", container.StateCreated, 1, "s1", "v1"))
	s.send(t, created("id1"))
	s.sync(t)
	done := e.mountAsync("v1", "m1")
	time.Sleep(20 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Mount returned before its container was looked up: %v", err)
	default:
	}
	if id := <-gate; id != "id1" {
		t.Fatalf("looked up %s, want id1", id)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if lists, _ := e.engine.counts(); lists != 0 {
		t.Errorf("%d engine lists, want 0", lists)
	}
}

// A lookup of a container created before the volume was born cannot be of
// a container that uses it: the Mount does not wait for it.
func TestBornVolumeMountSkipsOlderLookups(t *testing.T) {
	e := newEnv(t, time.Nanosecond)
	e.secret(t, "s1", "one")
	s := e.following(t)
	gate := make(chan string)
	e.engine.setIDGate(gate)
	e.ctrl.VolumeBorn("v0")
	e.engine.set(ctr("id0", "old", container.StateCreated, 1, "s1", "v0"))
	s.send(t, created("id0"))
	s.sync(t)
	// Counted once it took the gate: held there from now on.
	waitFor(t, "the older lookup held", func() bool { _, n := e.engine.counts(); return n == 1 })

	e.engine.setIDGate(nil)
	e.ctrl.VolumeBorn("v1")
	e.engine.set(
		ctr("id0", "old", container.StateCreated, 1, "s1", "v0"),
		ctr("id1", "web", container.StateCreated, 2, "s1", "v1"),
	)
	s.send(t, created("id1"))
	s.sync(t)
	waitFor(t, "the new container's lookup", func() bool {
		_, n := e.engine.counts()
		return n == 2 && controller.BirthLookups(e.ctrl) == 1
	})
	e.mount(t, "v1", "m1")
	if lists, _ := e.engine.counts(); lists != 0 {
		t.Errorf("%d engine lists: the Mount waited out the older lookup and asked", lists)
	}
	if got := taskNames(e.ctrl); len(got) != 1 || got[0] != "web@m1" {
		t.Errorf("tasks %v, want web@m1", got)
	}
	if id := <-gate; id != "id0" {
		t.Errorf("held lookup of %s, want id0", id)
	}
}

// Once its container is known, a Mount waits only for lookups that started
// after the engine first got the volume from the driver: a second
// container created with the volume makes the engine get it first.
func TestBornVolumeMountWaitsOnlyForLookupsAfterAGet(t *testing.T) {
	for _, tc := range []struct {
		name      string
		getBefore bool // the Get comes before the other container's create
		wait      bool
	}{
		{"other container created before any Get", false, false},
		{"other container created after a Get", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, time.Nanosecond)
			e.secret(t, "s1", "one")
			s := e.following(t)
			e.ctrl.VolumeBorn("v1")
			e.engine.set(
				ctr("id1", "web", container.StateCreated, 1, "s1", "v1"),
				ctr("id9", "other", container.StateCreated, 2, "s1", "v9"),
			)
			s.send(t, created("id1"))
			s.sync(t)
			waitFor(t, "the owner's lookup", func() bool { return controller.BirthLookups(e.ctrl) == 0 })

			gate := make(chan string)
			e.engine.setIDGate(gate)
			if tc.getBefore {
				e.ctrl.VolumeGot("v1")
			}
			s.send(t, created("id9"))
			s.sync(t)
			waitFor(t, "the other lookup held", func() bool { _, n := e.engine.counts(); return n == 2 })
			// The engine gets the volume before it Mounts it.
			e.ctrl.VolumeGot("v1")
			done := e.mountAsync("v1", "m1")
			select {
			case err := <-done:
				if tc.wait {
					t.Fatalf("Mount returned (%v) while a lookup that may be of a second user was under way", err)
				}
				if err != nil {
					t.Fatal(err)
				}
				<-gate
			case <-time.After(100 * time.Millisecond):
				if !tc.wait {
					t.Fatal("Mount waited for a lookup that started before any Get of its volume")
				}
				if id := <-gate; id != "id9" {
					t.Fatalf("held lookup of %s", id)
				}
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			}
			if lists, _ := e.engine.counts(); lists != 0 {
				t.Errorf("%d engine lists, want 0: id9 does not use v1", lists)
			}
			if got := taskNames(e.ctrl); len(got) != 1 || got[0] != "web@m1" {
				t.Errorf("tasks %v, want web@m1", got)
			}
		})
	}
}

// On an engine seen to get each volume right before it Mounts it (dockerd
// 20.10), the first Mount of a born volume got only once was got for
// itself: it waits for no other container's lookup. A second Get (a second
// container's create) brings the wait back.
func TestBornVolumeFirstMountOnAnEngineThatGets(t *testing.T) {
	for _, tc := range []struct {
		name       string
		secondUser bool
		wait       bool
	}{
		{"got once", false, false},
		{"got by a second container's create too", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, time.Nanosecond)
			e.secret(t, "s1", "one")
			s := e.following(t)
			// An earlier start shows the engine gets before it Mounts.
			e.ctrl.VolumeBorn("v0")
			e.engine.set(ctr("id0", "first", container.StateCreated, 1, "s1", "v0"))
			s.send(t, created("id0"))
			s.sync(t)
			waitFor(t, "the first lookup", func() bool { return controller.BirthLookups(e.ctrl) == 0 })
			e.ctrl.VolumeGot("v0")
			e.mount(t, "v0", "m0")

			e.ctrl.VolumeBorn("v1")
			e.engine.set(
				ctr("id0", "first", container.StateRunning, 1, "s1", "v0"),
				ctr("id1", "web", container.StateCreated, 2, "s1", "v1"),
				ctr("id9", "other", container.StateCreated, 3, "s1", "v9"),
			)
			s.send(t, created("id1"))
			s.sync(t)
			waitFor(t, "the owner's lookup", func() bool { return controller.BirthLookups(e.ctrl) == 0 })
			if tc.secondUser {
				e.ctrl.VolumeGot("v1")
			}
			// The engine gets the volume for the Mount, and another
			// container's create event comes in between.
			e.ctrl.VolumeGot("v1")
			gate := make(chan string)
			e.engine.setIDGate(gate)
			s.send(t, created("id9"))
			s.sync(t)
			waitFor(t, "the other lookup held", func() bool { _, n := e.engine.counts(); return n == 3 })
			done := e.mountAsync("v1", "m1")
			select {
			case err := <-done:
				if tc.wait {
					t.Fatalf("Mount returned (%v) while a lookup after a second Get was under way", err)
				}
				if err != nil {
					t.Fatal(err)
				}
				<-gate
			case <-time.After(100 * time.Millisecond):
				if !tc.wait {
					t.Fatal("the first Mount of a volume got once waited for another container's lookup")
				}
				<-gate
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			}
			if got := taskNames(e.ctrl); !slices.Contains(got, "web@m1") {
				t.Errorf("tasks %v, want web@m1", got)
			}
		})
	}
}

// Whenever the first container created with a volume may not be the one
// starting, the Mount asks the engine.
func TestBornVolumeVoided(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, e *env, s *stream) *stream
	}{
		{"second container with the volume", func(t *testing.T, e *env, s *stream) *stream {
			e.engine.set(
				ctr("id1", "web", container.StateCreated, 1, "s1", "v1"),
				ctr("id2", "sidecar", container.StateCreated, 2, "s1", "v1"),
			)
			s.send(t, created("id1"))
			s.send(t, created("id2"))
			s.sync(t)
			// The second container's lookup voids the birth once it is
			// done; a Mount before that takes the first container.
			waitFor(t, "the lookups", func() bool { return controller.BirthLookups(e.ctrl) == 0 })
			return s
		}},
		{"second container after the first is known", func(t *testing.T, e *env, s *stream) *stream {
			e.engine.set(
				ctr("id1", "web", container.StateCreated, 1, "s1", "v1"),
				ctr("id2", "sidecar", container.StateCreated, 2, "s1", "v1"),
			)
			s.send(t, created("id1"))
			s.sync(t)
			waitFor(t, "the first lookup", func() bool { return controller.BirthLookups(e.ctrl) == 0 })
			// dockerd gets the volume from the driver during the second
			// container's create, before its create event.
			e.ctrl.VolumeGot("v1")
			s.send(t, created("id2"))
			s.sync(t)
			return s
		}},
		{"lookup failed", func(t *testing.T, e *env, s *stream) *stream {
			e.engine.set(ctr("id1", "web", container.StateCreated, 1, "s1", "v1"))
			e.engine.mu.Lock()
			e.engine.idErr = errors.New("connection reset")
			e.engine.mu.Unlock()
			s.send(t, created("id1"))
			s.sync(t)
			return s
		}},
		{"event stream broke", func(t *testing.T, e *env, s *stream) *stream {
			e.engine.set(ctr("id1", "web", container.StateCreated, 1, "s1", "v1"))
			s.send(t, created("id1"))
			s.sync(t)
			s.errs <- errors.New("unexpected EOF")
			s = e.engine.next(t)
			waitFor(t, "the resync after reconnecting", func() bool { return resyncs(e.ctrl) == 2 })
			return s
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, time.Nanosecond)
			e.secret(t, "s1", "one")
			s := e.following(t)
			e.ctrl.VolumeBorn("v1")
			s = tc.setup(t, e, s)
			before, _ := e.engine.counts()
			e.mount(t, "v1", "m1")
			if lists, _ := e.engine.counts(); lists != before+1 {
				t.Errorf("the Mount made %d engine lists, want 1", lists-before)
			}
		})
	}
}

// A volume born while the event stream is down may have lost its
// container's create: it never skips the engine.
func TestVolumeBornWhileNotFollowing(t *testing.T) {
	e := newEnv(t, time.Nanosecond)
	e.secret(t, "s1", "one")
	e.ctrl.VolumeBorn("v1")
	s := e.following(t)
	e.engine.set(ctr("id1", "web", container.StateCreated, 1, "s1", "v1"))
	s.send(t, created("id1"))
	s.sync(t)
	e.mount(t, "v1", "m1")
	if lists, lookups := e.engine.counts(); lists != 1 || lookups != 0 {
		t.Errorf("%d engine lookups by the Mount and %d at the create, want 1 and 0", lists, lookups)
	}
}

// dockerd Mounts a volume inside the container's create, to copy the
// image's content into it, before it sends the create event: that Mount
// does not wait for a container nobody is looking up, and does not use up
// what the create will teach.
func TestCopyUpMountDoesNotWait(t *testing.T) {
	e := newEnv(t, time.Nanosecond)
	e.secret(t, "s1", "one")
	s := e.following(t)
	e.ctrl.VolumeBorn("v1")
	e.engine.set(ctr("id1", "web", container.StateCreated, 1, "s1", "v1"))
	start := time.Now()
	e.mount(t, "v1", "copyup")
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("the copy-up Mount took %v: it waited", d)
	}
	if err := e.ctrl.Unmount("v1", "copyup"); err != nil {
		t.Fatal(err)
	}
	s.send(t, created("id1"))
	s.sync(t)
	e.mount(t, "v1", "start")
	if lists, _ := e.engine.counts(); lists != 1 {
		t.Errorf("%d Mount lookups, want 1 (the copy-up's only)", lists)
	}
}
