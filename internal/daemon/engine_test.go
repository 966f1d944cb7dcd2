package daemon

import (
	"context"
	"errors"
	"log/slog"
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

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/controller"
	"github.com/secretd/secretd/errdefs"
	"github.com/secretd/secretd/internal/enginesim"
	"github.com/secretd/secretd/internal/store"
	"github.com/secretd/secretd/internal/store/bolt"
)

// fakeEngineSocket serves an engine API on a unix socket: /_ping answers
// with pingVersion, or never when it is "" (a dockerd that is restoring
// its containers); container lists answer an empty list. It records the
// paths asked.
func fakeEngineSocket(t *testing.T, pingVersion string) (host string, paths func() []string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var mu sync.Mutex
	var seen []string
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.Path)
		mu.Unlock()
		switch {
		case r.URL.Path == "/_ping":
			if pingVersion == "" {
				select {
				case <-stop:
				case <-r.Context().Done():
				}
				return
			}
			w.Header().Set("Api-Version", pingVersion)
			w.Write([]byte("OK"))
		case strings.HasSuffix(r.URL.Path, "/containers/json"):
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte("[]"))
		default:
			http.NotFound(w, r)
		}
	})}
	go srv.Serve(l)
	t.Cleanup(func() { close(stop); srv.Close() })
	return "unix://" + sock, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestEngineSilentPing starts against an engine that does not answer
// /_ping: no version is pinned, nothing but /_ping reaches the engine,
// and a bounded call fails closed, within one question, with an error
// that says why, even while an unbounded call (the event stream's) waits.
func TestEngineSilentPing(t *testing.T) {
	t.Setenv("DOCKER_API_VERSION", "")
	host, paths := fakeEngineSocket(t, "")
	start := time.Now()
	e, _, err := newEngine(context.Background(), host, 100*time.Millisecond, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("newEngine took %v against a silent engine", took)
	}
	if v := e.Version(); v != "" {
		t.Errorf("API version %q pinned before the engine said its own", v)
	}
	first, cancelFirst := context.WithCancel(context.Background())
	defer cancelFirst()
	go e.Events(first, events.ListOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start = time.Now()
	_, err = e.ContainerList(ctx, container.ListOptions{All: true})
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "has not told its API version yet") || !strings.Contains(err.Error(), host) {
		t.Errorf("a bounded lookup before the engine answered: %v, want unavailable, naming the engine", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the lookup failed after %v, want within about one question (100ms)", took)
	}
	for _, p := range paths() {
		if p != "/_ping" {
			t.Errorf("request %s reached an engine whose version is unknown", p)
		}
	}
}

// TestEngineVersion takes the engine's own version when it answers, and
// DOCKER_API_VERSION's without asking.
func TestEngineVersion(t *testing.T) {
	t.Setenv("DOCKER_API_VERSION", "")
	host, paths := fakeEngineSocket(t, "1.43")
	e, _, err := newEngine(context.Background(), host, 10*time.Second, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if v := e.Version(); v != "1.43" {
		t.Errorf("API version %s, want the engine's 1.43", v)
	}
	if _, err := e.ContainerList(context.Background(), container.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if p := paths(); p[len(p)-1] != "/v1.43/containers/json" {
		t.Errorf("requests %v, want the list at /v1.43/", p)
	}
	t.Setenv("DOCKER_API_VERSION", "1.42")
	e2, _, err := newEngine(context.Background(), host, 10*time.Second, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	if v := e2.Version(); v != "1.42" {
		t.Errorf("API version %s, want DOCKER_API_VERSION's 1.42", v)
	}
}

// newSim starts a simulated engine of profile p on sock.
func newSim(t *testing.T, sock string, p enginesim.Profile) *enginesim.Sim {
	t.Helper()
	sim, err := enginesim.Start(sock, enginesim.Options{Containers: 3, Driver: "secretd-test", Profile: p})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim
}

// TestEngineLatePing: secretd starts while the engine answers nothing, as
// at boot, for each engine profile. Engine calls fail closed, saying why;
// once the engine answers, the version is its own (below 1.44 Engine 29
// refuses), and the controller follows its events and resyncs. The old
// code pinned 1.41 here, which Engine 29.0 refuses forever.
func TestEngineLatePing(t *testing.T) {
	t.Setenv("DOCKER_API_VERSION", "")
	for _, p := range enginesim.Profiles {
		t.Run(p.Name, func(t *testing.T) {
			sim := newSim(t, filepath.Join(t.TempDir(), "engine.sock"), p)
			sim.Hold()
			released := false
			defer func() {
				if !released {
					sim.Release()
				}
			}()
			e, _, err := newEngine(context.Background(), sim.Host, 200*time.Millisecond, quiet())
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err = e.ContainerList(ctx, container.ListOptions{})
			cancel()
			if !errors.Is(err, errdefs.ErrUnavailable) {
				t.Fatalf("list while the engine answers nothing: %v, want unavailable", err)
			}

			ctrl := newController(t, e)
			cctx, stop := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { ctrl.Run(cctx); close(done) }()
			defer func() { stop(); <-done }()

			sim.Release()
			released = true
			want := dockerapi.DefaultVersion // the docker client's newest
			if versions.LessThan(p.APIVersion, want) {
				want = p.APIVersion
			}
			waitUntil(t, "the engine's version", func() bool { return e.Version() == want })
			waitUntil(t, "the controller to follow the events and resync", func() bool {
				var st api.Status
				ctrl.Stats(&st)
				return st.Resyncs >= 1 && st.EngineError == "" && sim.Subscribers() == 1
			})
			if _, err := e.ContainerList(context.Background(), container.ListOptions{}); err != nil {
				t.Errorf("list after the engine answered: %v", err)
			}
			// An event reaches the controller.
			var before api.Status
			ctrl.Stats(&before)
			if err := sim.Rename(sim.Containers()[0].ID, "renamed"); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, "the rename event to be handled", func() bool {
				var st api.Status
				ctrl.Stats(&st)
				return st.EventsHandled > before.EventsHandled
			})
		})
	}
}

// TestEngineRenegotiates: the engine is replaced while secretd runs, by
// one that refuses the version secretd settled on (Engine 20.10 upgraded
// to 29.0). A call is refused once, renegotiates and succeeds; the event
// stream, refused too, comes back at the new version.
func TestEngineRenegotiates(t *testing.T) {
	t.Setenv("DOCKER_API_VERSION", "")
	sock := filepath.Join(t.TempDir(), "engine.sock")
	old := newSim(t, sock, enginesim.Docker2010)
	e, _, err := newEngine(context.Background(), old.Host, time.Second, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if v := e.Version(); v != "1.41" {
		t.Fatalf("version %s against Engine 20.10, want 1.41", v)
	}
	old.Close()
	sim := newSim(t, sock, enginesim.Docker29)

	list, err := e.ContainerList(context.Background(), container.ListOptions{})
	if err != nil || len(list) != 3 {
		t.Fatalf("list after the upgrade: %d containers, %v; want 3, renegotiated", len(list), err)
	}
	if v := e.Version(); v != "1.51" {
		t.Errorf("version %s after the upgrade, want 1.51", v)
	}

	// The stream: refused at the old version by an engine that was
	// replaced again, it renegotiates before passing the refusal on.
	sim.Close()
	newSim(t, sock, enginesim.Docker2010)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, errs := e.Events(ctx, events.ListOptions{Filters: filters.NewArgs(filters.Arg("type", "container"))})
	if err := <-errs; err == nil || !strings.Contains(err.Error(), "client version 1.51 is too new") {
		t.Fatalf("stream at 1.51 against Engine 20.10: %v, want its refusal", err)
	}
	if v := e.Version(); v != "1.41" {
		t.Errorf("version %s after the refused stream, want 1.41", v)
	}
	msgs, errs := e.Events(ctx, events.ListOptions{})
	select {
	case err := <-errs:
		t.Fatalf("the next stream: %v", err)
	case <-msgs:
		t.Fatal("an event from nowhere")
	case <-time.After(100 * time.Millisecond):
	}
}

// TestEngineRefusesEveryVersion: an engine whose oldest version is newer
// than any secretd speaks is asked once per refused call, and the call
// fails with the engine's words.
func TestEngineRefusesEveryVersion(t *testing.T) {
	t.Setenv("DOCKER_API_VERSION", "")
	sim := newSim(t, filepath.Join(t.TempDir(), "engine.sock"), enginesim.Profile{Name: "future", APIVersion: "1.60", MinAPIVersion: "1.55"})
	e, _, err := newEngine(context.Background(), sim.Host, time.Second, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	_, err = e.ContainerList(context.Background(), container.ListOptions{})
	if err == nil || !strings.Contains(err.Error(), "client version 1.51 is too old. Minimum supported API version is 1.55") {
		t.Errorf("list against an engine that refuses 1.51: %v", err)
	}
}

func newController(t *testing.T, e *Engine) *controller.Controller {
	t.Helper()
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
	ctrl, err := controller.New(controller.Config{Store: st, Engine: e, Actions: e, MountRoot: filepath.Join(dir, "mounts"), DriverName: "secretd-test"})
	if err != nil {
		t.Fatal(err)
	}
	return ctrl
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
