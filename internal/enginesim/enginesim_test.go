package enginesim

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dockerapi "github.com/docker/docker/api"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/versions"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/controller"
	"github.com/secretd/secretd/internal/store"
	"github.com/secretd/secretd/internal/store/bolt"
)

func start(t *testing.T, n int) (*Sim, *client.Client) {
	t.Helper()
	return startProfile(t, n, Profile{})
}

func startProfile(t *testing.T, n int, p Profile) (*Sim, *client.Client) {
	t.Helper()
	sim, err := Start(filepath.Join(t.TempDir(), "sim.sock"), Options{
		Containers: n, Driver: "secretd-sim", Secrets: []string{"a", "b", "c", "d", "e", "f", "g"},
		Labels: map[string]string{"fleet": "sim"}, Profile: p,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	// The same options as the daemon's engine client.
	cl, err := client.NewClientWithOpts(client.WithHost(sim.Host), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return sim, cl
}

// TestNegotiation: the docker client speaks the lower of its own newest
// version and the profile's, and /version says the profile's range.
func TestNegotiation(t *testing.T) {
	for _, p := range Profiles {
		t.Run(p.Name, func(t *testing.T) {
			_, cl := startProfile(t, 1, p)
			v, err := cl.ServerVersion(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			want := dockerapi.DefaultVersion
			if versions.LessThan(p.APIVersion, want) {
				want = p.APIVersion
			}
			if v.APIVersion != p.APIVersion || v.MinAPIVersion != p.MinAPIVersion || cl.ClientVersion() != want {
				t.Fatalf("server %s (minimum %s), client %s; want %s (minimum %s), %s", v.APIVersion, v.MinAPIVersion, cl.ClientVersion(), p.APIVersion, p.MinAPIVersion, want)
			}
		})
	}
}

// TestVersionRefused: a request outside the profile's versions gets
// dockerd's 400 and its words, which secretd looks for to renegotiate.
func TestVersionRefused(t *testing.T) {
	sim, _ := startProfile(t, 1, Docker29)
	for v, want := range map[string]string{
		"1.41": "client version 1.41 is too old. Minimum supported API version is 1.44, please upgrade your client to a newer version",
		"1.53": "client version 1.53 is too new. Maximum supported API version is 1.52",
	} {
		cl, err := client.NewClientWithOpts(client.WithHost(sim.Host), client.WithVersion(v))
		if err != nil {
			t.Fatal(err)
		}
		_, err = cl.ContainerList(context.Background(), container.ListOptions{})
		cl.Close()
		if !errdefs.IsInvalidParameter(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("list at %s: %v, want a 400 with %q", v, err, want)
		}
	}
	for _, v := range []string{"1.44", "1.52"} {
		cl, err := client.NewClientWithOpts(client.WithHost(sim.Host), client.WithVersion(v))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cl.ContainerList(context.Background(), container.ListOptions{}); err != nil {
			t.Errorf("list at %s: %v", v, err)
		}
		cl.Close()
	}
}

// TestHold: while held, nothing is answered, a ping with a deadline
// included; after Release, the requests that waited are answered.
func TestHold(t *testing.T) {
	sim, cl := start(t, 1)
	sim.Hold()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, err := cl.Ping(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ping while held: %v, want its deadline", err)
	}
	waited := make(chan error, 1)
	go func() {
		_, err := cl.Ping(context.Background())
		waited <- err
	}()
	select {
	case err := <-waited:
		t.Fatalf("a ping was answered while held: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	sim.Release()
	select {
	case err := <-waited:
		if err != nil {
			t.Errorf("the ping that waited: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Release did not answer the ping that waited")
	}
}

// TestEventFields: the legacy status, id and from are on the wire for
// Engine 20.10 and absent for Engine 29, as its API 1.52 sends events.
func TestEventFields(t *testing.T) {
	for _, p := range Profiles {
		t.Run(p.Name, func(t *testing.T) {
			sim, _ := startProfile(t, 1, p)
			hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", sim.Socket)
			}}}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://sim/v"+p.APIVersion+"/events", nil)
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			waitFor(t, func() bool { return sim.Subscribers() == 1 })
			c := sim.Containers()[0]
			must(t, sim.Die(c.ID, 0))
			var raw map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
				t.Fatal(err)
			}
			actor, _ := raw["Actor"].(map[string]any)
			if raw["Type"] != "container" || raw["Action"] != "die" || actor["ID"] != c.ID {
				t.Errorf("event %v: want a container die of %s", raw, c.ID)
			}
			for _, f := range []string{"status", "id", "from"} {
				if _, ok := raw[f]; ok != p.LegacyEventFields {
					t.Errorf("field %q present %v, want %v: %v", f, ok, p.LegacyEventFields, raw)
				}
			}
		})
	}
}

func TestList(t *testing.T) {
	sim, cl := start(t, 20)
	ctx := context.Background()
	cs := sim.Containers()
	if err := sim.Die(cs[3].ID, 1); err != nil {
		t.Fatal(err)
	}
	list := func(opts container.ListOptions) []container.Summary {
		t.Helper()
		l, err := cl.ContainerList(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	if l := list(container.ListOptions{}); len(l) != 19 {
		t.Errorf("running: %d, want 19", len(l))
	}
	all := list(container.ListOptions{All: true})
	if len(all) != 20 || all[0].ID != cs[19].ID || all[19].ID != cs[0].ID {
		t.Fatalf("all: %d containers, want 20, newest first", len(all))
	}
	s := all[19]
	if s.Names[0] != "/"+cs[0].Name || s.State != container.StateRunning || s.Labels["secretd.secrets"] != "a;b;c;d;e" {
		t.Errorf("summary: %+v", s)
	}
	if len(s.Mounts) != 1 || s.Mounts[0].Driver != "secretd-sim" || s.Mounts[0].Name != cs[0].Volume || s.Mounts[0].Destination != "/run/secrets" {
		t.Errorf("mounts: %+v", s.Mounts)
	}
	// The probe the controller uses for liveness.
	if l := list(container.ListOptions{Limit: 1}); len(l) != 1 || l[0].ID != cs[19].ID {
		t.Errorf("limit 1: %+v", l)
	}

	byVolume := list(container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("volume", cs[3].Volume))})
	if len(byVolume) != 1 || byVolume[0].ID != cs[3].ID || byVolume[0].State != container.StateExited {
		t.Errorf("volume filter: %+v", byVolume)
	}
	if l := list(container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("volume", "/run/secrets"))}); len(l) != 20 {
		t.Errorf("volume filter by destination: %d, want 20", len(l))
	}
	// Declarations repeat every 7 containers: 5 of 7 names each.
	if l := list(container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "secretd.secrets=f;g;a;b;c"))}); len(l) != 3 || l[2].ID != cs[1].ID {
		t.Errorf("label=value filter: %+v", l)
	}
	if l := list(container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "fleet"))}); len(l) != 20 {
		t.Errorf("label filter: %d, want 20", len(l))
	}
	if l := list(container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "fleet=other"))}); len(l) != 0 {
		t.Errorf("label=other filter: %d, want 0", len(l))
	}
	if l := list(container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("name", "^/"+cs[5].Name+"$"))}); len(l) != 1 || l[0].ID != cs[5].ID {
		t.Errorf("name filter: %+v", l)
	}
	if l := list(container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("status", "exited"))}); len(l) != 1 || l[0].ID != cs[3].ID {
		t.Errorf("status filter: %+v", l)
	}
	// By ID: full IDs and unique prefixes, never names; an exited
	// container only with all.
	byID := filters.NewArgs(filters.Arg("id", cs[3].ID), filters.Arg("id", cs[7].ID[:12]), filters.Arg("id", cs[9].Name))
	if l := list(container.ListOptions{All: true, Filters: byID}); len(l) != 2 || l[0].ID != cs[7].ID || l[1].ID != cs[3].ID {
		t.Errorf("id filter: %+v, want %s then %s", l, cs[7].ID, cs[3].ID)
	}
	if l := list(container.ListOptions{Filters: byID}); len(l) != 1 || l[0].ID != cs[7].ID {
		t.Errorf("id filter, running only: %+v", l)
	}
	if l := list(container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("id", "zz"))}); len(l) != 0 {
		t.Errorf("id filter, no such ID: %+v", l)
	}
	_, err := cl.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(filters.Arg("bogus", "x"))})
	if !errdefs.IsInvalidParameter(err) {
		t.Errorf("unknown filter: %v, want an invalid-parameter error", err)
	}
}

func TestInspect(t *testing.T) {
	sim, cl := start(t, 3)
	ctx := context.Background()
	c := sim.Containers()[1]
	for _, ref := range []string{c.ID, c.ID[:12], c.Name, "/" + c.Name} {
		r, err := cl.ContainerInspect(ctx, ref)
		if err != nil {
			t.Fatalf("inspect %s: %v", ref, err)
		}
		if r.ID != c.ID || r.Name != "/"+c.Name || !r.State.Running || r.Config.Labels["secretd.secrets"] == "" || len(r.Mounts) != 1 || r.Mounts[0].Name != c.Volume {
			t.Errorf("inspect %s: %+v", ref, r)
		}
	}
	if _, err := cl.ContainerInspect(ctx, "nosuchcontainer"); !errdefs.IsNotFound(err) {
		t.Errorf("missing container: %v, want not found", err)
	}
}

// TestImageInspect: each container's image, by the ID the list gives,
// answers with no labels; an unknown image is not found.
func TestImageInspect(t *testing.T) {
	_, cl := start(t, 2)
	ctx := context.Background()
	list, err := cl.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %d, %v", len(list), err)
	}
	for _, c := range list {
		img, err := cl.ImageInspect(ctx, c.ImageID)
		if err != nil {
			t.Fatalf("image of %s: %v", c.ID, err)
		}
		if img.ID != c.ImageID || img.Config == nil || len(img.Config.Labels) != 0 {
			t.Errorf("image of %s: %+v", c.ID, img)
		}
	}
	if _, err := cl.ImageInspect(ctx, "sha256:nosuchimage"); !errdefs.IsNotFound(err) {
		t.Errorf("missing image: %v, want not found", err)
	}
}

func TestEvents(t *testing.T) {
	sim, cl := start(t, 5)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The controller's subscription.
	f := filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("event", string(events.ActionDestroy)),
		filters.Arg("event", string(events.ActionRename)),
		filters.Arg("event", string(events.ActionDie)),
	)
	msgs, errs := cl.Events(ctx, events.ListOptions{Filters: f})
	// A second stream sees only one container's events, by ID prefix.
	cs := sim.Containers()
	one, _ := cl.Events(ctx, events.ListOptions{Filters: filters.NewArgs(filters.Arg("container", cs[0].ID[:12]))})
	waitFor(t, func() bool { return sim.Subscribers() == 2 })

	must(t, sim.StartContainer(cs[0].ID)) // not to the controller
	must(t, sim.Rename(cs[1].ID, "renamed"))
	must(t, sim.Die(cs[2].ID, 3))
	must(t, sim.Destroy(cs[2].ID))
	fresh := sim.Run() // create and start: filtered out
	must(t, sim.Die(fresh.ID, 0))

	type want struct {
		action events.Action
		id     string
		attr   string
	}
	for _, w := range []want{
		{events.ActionRename, cs[1].ID, "renamed"},
		{events.ActionDie, cs[2].ID, "3"},
		{events.ActionDestroy, cs[2].ID, ""},
		{events.ActionDie, fresh.ID, "0"},
	} {
		select {
		case m := <-msgs:
			if m.Type != events.ContainerEventType || m.Action != w.action || m.Actor.ID != w.id || m.TimeNano == 0 || m.Actor.Attributes["fleet"] != "sim" {
				t.Fatalf("got %+v, want %s of %s", m, w.action, w.id)
			}
			switch w.action {
			case events.ActionRename:
				if m.Actor.Attributes["name"] != w.attr || m.Actor.Attributes["oldName"] != "/"+cs[1].Name {
					t.Errorf("rename attributes: %v", m.Actor.Attributes)
				}
			case events.ActionDie:
				if m.Actor.Attributes["exitCode"] != w.attr {
					t.Errorf("die attributes: %v", m.Actor.Attributes)
				}
			}
		case err := <-errs:
			t.Fatal(err)
		case <-time.After(5 * time.Second):
			t.Fatalf("no %s event", w.action)
		}
	}
	select {
	case m := <-one:
		if m.Action != events.ActionStart || m.Actor.ID != cs[0].ID {
			t.Errorf("container filter: %+v", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no start event on the container stream")
	}
	select {
	case m := <-one:
		t.Errorf("the container filter let through %+v", m)
	case <-time.After(50 * time.Millisecond):
	}
	if l, _ := cl.ContainerList(ctx, container.ListOptions{All: true}); len(l) != 5 {
		t.Errorf("after destroy and run: %d containers, want 5", len(l))
	}

	sim.BreakStreams()
	select {
	case err := <-errs:
		if !errors.Is(err, io.EOF) {
			t.Errorf("after BreakStreams: %v, want EOF", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("BreakStreams did not end the stream")
	}
}

// Create is the first half of a `docker run`: the container exists with the
// driver's volume, is listed only with all, and "create" is sent; start
// comes later.
func TestCreate(t *testing.T) {
	sim, cl := start(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, errs := cl.Events(ctx, events.ListOptions{Filters: filters.NewArgs(filters.Arg("event", string(events.ActionCreate)))})
	waitFor(t, func() bool { return sim.Subscribers() == 1 })

	c := sim.Create("vol-1")
	if c.Volume != "vol-1" || c.State != container.StateCreated {
		t.Fatalf("created: %+v", c)
	}
	select {
	case m := <-msgs:
		if m.Action != events.ActionCreate || m.Actor.ID != c.ID || m.Actor.Attributes["secretd.secrets"] == "" {
			t.Errorf("got %+v, want the create of %s with its labels", m, c.ID)
		}
	case err := <-errs:
		t.Fatal(err)
	case <-time.After(5 * time.Second):
		t.Fatal("no create event")
	}
	byID := container.ListOptions{Filters: filters.NewArgs(filters.Arg("id", c.ID))}
	if l, _ := cl.ContainerList(ctx, byID); len(l) != 0 {
		t.Errorf("a created container listed without all: %+v", l)
	}
	byID.All = true
	l, err := cl.ContainerList(ctx, byID)
	if err != nil || len(l) != 1 || l[0].State != container.StateCreated || len(l[0].Mounts) != 1 || l[0].Mounts[0].Name != "vol-1" {
		t.Fatalf("list by ID: %+v, %v", l, err)
	}
	must(t, sim.StartContainer(c.ID))
	if l, _ := cl.ContainerList(ctx, container.ListOptions{}); len(l) != 4 || l[0].ID != c.ID {
		t.Errorf("after start: %d running, newest %s; want 4, newest %s", len(l), l[0].ID, c.ID)
	}
}

// POST /containers/{id}/start runs Options.Start before the container runs,
// as dockerd mounts volumes inside the start, and fails with it.
func TestStartCallsHook(t *testing.T) {
	var mu sync.Mutex
	var hooked []Container
	fail := errors.New("mount refused")
	sim, err := Start(filepath.Join(t.TempDir(), "sim.sock"), Options{Driver: "secretd-sim", Start: func(c Container) error {
		mu.Lock()
		defer mu.Unlock()
		hooked = append(hooked, c)
		if c.Volume == "refused" {
			return fail
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	cl, err := client.NewClientWithOpts(client.WithHost(sim.Host), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()

	c := sim.Create("vol-1")
	if err := cl.ContainerStart(ctx, c.ID[:12], container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(hooked) != 1 || hooked[0].ID != c.ID || hooked[0].State != container.StateCreated {
		t.Errorf("hook saw %+v, want %s once, before it ran", hooked, c.ID)
	}
	if r, err := cl.ContainerInspect(ctx, c.ID); err != nil || !r.State.Running {
		t.Errorf("after start: %+v, %v", r.State, err)
	}
	// Started again: dockerd's 304, and no second Mount.
	if err := cl.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil || len(hooked) != 1 {
		t.Errorf("start of a running container: %v, hook called %d times", err, len(hooked))
	}

	refused := sim.Create("refused")
	if err := cl.ContainerStart(ctx, refused.ID, container.StartOptions{}); err == nil || !strings.Contains(err.Error(), fail.Error()) {
		t.Errorf("start with a failing hook: %v, want %q", err, fail)
	}
	if r, _ := cl.ContainerInspect(ctx, refused.ID); r.State == nil || r.State.Running {
		t.Errorf("a failed start left the container running")
	}
	if err := cl.ContainerStart(ctx, "nosuch", container.StartOptions{}); !errdefs.IsNotFound(err) {
		t.Errorf("start of no such container: %v, want not found", err)
	}
}

func TestEventsRejectsUnknownFilter(t *testing.T) {
	_, cl := start(t, 1)
	_, errs := cl.Events(context.Background(), events.ListOptions{Filters: filters.NewArgs(filters.Arg("bogus", "x"))})
	if err := <-errs; err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("unknown filter: %v", err)
	}
}

func TestBurst(t *testing.T) {
	sim, cl := start(t, 200)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	msgs, errs := cl.Events(ctx, events.ListOptions{})
	waitFor(t, func() bool { return sim.Subscribers() == 1 })
	kept := sim.Containers()[0].ID
	mix := []events.Action{events.ActionRename, events.ActionRename, events.ActionDie, events.ActionStart, events.ActionDestroy}
	begin := time.Now()
	counts, err := sim.Burst(ctx, BurstOptions{Rate: 1000, Duration: 200 * time.Millisecond, Mix: mix, Keep: func(id string) bool { return id == kept }})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begin); took < 190*time.Millisecond || took > 2*time.Second {
		t.Errorf("200 events at 1000/s took %v", took)
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	if total != 200 || counts[events.ActionDestroy] != 40 {
		t.Errorf("counts %v: want 200 events, 40 destroys", counts)
	}
	// Each destroy brings a create and a start for its replacement.
	want := total + 2*counts[events.ActionDestroy]
	for range want {
		select {
		case m := <-msgs:
			if m.Actor.ID == kept && (m.Action == events.ActionDie || m.Action == events.ActionDestroy) {
				t.Errorf("kept container got %s", m.Action)
			}
		case err := <-errs:
			t.Fatal(err)
		case <-time.After(5 * time.Second):
			t.Fatal("events missing")
		}
	}
	if n := len(sim.Containers()); n != 200 {
		t.Errorf("fleet is %d after the burst, want 200", n)
	}
	if sim.Dropped() != 0 {
		t.Errorf("%d subscribers dropped", sim.Dropped())
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestDrivesController runs secretd's controller against the simulator:
// it follows the stream, times every event, and resyncs after a break.
// No tmpfs is mounted, so it needs no root.
func TestDrivesController(t *testing.T) {
	for _, p := range Profiles {
		t.Run(p.Name, func(t *testing.T) { drivesController(t, p) })
	}
}

func drivesController(t *testing.T, p Profile) {
	sim, cl := startProfile(t, 100, p)
	dir := t.TempDir()
	b, err := bolt.Open(filepath.Join(dir, "secrets.db"))
	if err != nil {
		t.Fatal(err)
	}
	st, _, err := store.Open(b, store.Config{KeyFile: filepath.Join(dir, "key")})
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctrl, err := controller.New(controller.Config{Store: st, Engine: cl, MountRoot: filepath.Join(dir, "mounts"), DriverName: "secretd-sim"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ctrl.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	stats := func() api.Status {
		var s api.Status
		ctrl.Stats(&s)
		return s
	}
	waitFor(t, func() bool { return stats().Resyncs == 1 && sim.Subscribers() == 1 })

	cs := sim.Containers()
	for i := range 100 {
		must(t, sim.Rename(cs[i].ID, cs[i].Name+"-new"))
	}
	// Run emits create and start; the controller follows both.
	sim.Run()
	waitFor(t, func() bool { return stats().EventsHandled == 102 })
	if s := stats(); s.EventLagP50 <= 0 || s.EventLagP99 < s.EventLagP50 || s.EventLagP99 > 5*time.Second {
		t.Errorf("event lag p50 %v p99 %v", s.EventLagP50, s.EventLagP99)
	}

	sim.BreakStreams()
	waitFor(t, func() bool { return stats().Resyncs == 2 && sim.Subscribers() == 1 })
}
