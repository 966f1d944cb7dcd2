package daemon

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
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

// TestNewEngineSilentPing starts against an engine that does not answer
// /_ping: the client is pinned to Engine 20.10's API version, and no
// request negotiates, so a bounded lookup (a Mount's) is answered even
// while an unbounded request that came first waits.
func TestNewEngineSilentPing(t *testing.T) {
	t.Setenv("DOCKER_API_VERSION", "")
	host, paths := fakeEngineSocket(t, "")
	c, _, err := newEngine(context.Background(), host, 100*time.Millisecond, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if v := c.ClientVersion(); v != minAPIVersion {
		t.Errorf("API version %s, want %s when the engine does not answer /_ping", v, minAPIVersion)
	}
	// The event stream's request: no deadline.
	first, cancelFirst := context.WithCancel(context.Background())
	defer cancelFirst()
	go c.ContainerList(first, container.ListOptions{All: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.ContainerList(ctx, container.ListOptions{All: true}); err != nil {
		t.Fatalf("a bounded lookup after start: %v", err)
	}
	pings := 0
	for _, p := range paths() {
		if p == "/_ping" {
			pings++
		} else if !strings.HasPrefix(p, "/v"+minAPIVersion+"/") {
			t.Errorf("request %s is not at API version %s", p, minAPIVersion)
		}
	}
	if pings != 1 {
		t.Errorf("%d pings, want the one at start", pings)
	}
}

// TestNewEngineVersion takes the engine's own version when it answers.
func TestNewEngineVersion(t *testing.T) {
	t.Setenv("DOCKER_API_VERSION", "")
	host, _ := fakeEngineSocket(t, "1.43")
	c, _, err := newEngine(context.Background(), host, 10*time.Second, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if v := c.ClientVersion(); v != "1.43" {
		t.Errorf("API version %s, want the engine's 1.43", v)
	}
	t.Setenv("DOCKER_API_VERSION", "1.42")
	c2, _, err := newEngine(context.Background(), host, 10*time.Second, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if v := c2.ClientVersion(); v != "1.42" {
		t.Errorf("API version %s, want DOCKER_API_VERSION's 1.42", v)
	}
}
