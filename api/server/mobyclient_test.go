package server_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// mobyClientDir holds a program on github.com/moby/moby/client, the Go
// client docker CLI 29 is built on, in a module of its own: go.mod has the
// newest client, client-v0.2.2.mod the one of docker CLI 29.0-29.2. Two
// versions of one module cannot share secretd's go.mod.
const mobyClientDir = "testdata/mobyclient"

// mobyReport mirrors the program's report.
type mobyReport struct {
	Fatal                        string
	PingAPIVersion               string
	ClientVersion                string
	SwarmManager                 bool
	Created                      map[string]string
	Lists                        map[string][]string
	InspectName                  string
	InspectLabels, UpdatedLabels map[string]string
	InspectHasData               bool
	StaleUpdate                  string
	RemovedByPrefix              bool
	RemoveAgain                  string
	RemoveNotFound               bool
}

// buildMobyClient builds the program against modfile.
func buildMobyClient(t *testing.T, modfile string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mobyclient")
	cmd := exec.Command("go", "build", "-modfile="+modfile, "-o", bin, ".")
	cmd.Dir = mobyClientDir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s against %s (its modules come with `make deps`): %v\n%s", mobyClientDir, modfile, err, out)
	}
	return bin
}

// servePaths serves srv on a unix socket and records the path of every
// request, version prefix included.
func servePaths(t *testing.T, srv http.Handler) (host string, paths func() []string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "d.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.Path)
		mu.Unlock()
		srv.ServeHTTP(w, r)
	})}
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	return "unix://" + sock, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
}

// TestMobyClient drives the Docker-shaped API with the Go client of docker
// CLI 29 at two versions: v0.2.2 refuses any server whose /_ping says below
// 1.44, v0.6.3 speaks up to 1.57. Each negotiates the lower of its maximum
// and secretd's 1.55, then creates, lists with filters, inspects, updates
// labels and removes, every request at that version.
func TestMobyClient(t *testing.T) {
	for _, c := range []struct{ name, modfile, version string }{
		{"v0.2.2", "client-v0.2.2.mod", "1.53"},
		{"v0.6.3", "go.mod", "1.55"},
	} {
		t.Run(c.name, func(t *testing.T) {
			bin := buildMobyClient(t, c.modfile)
			e := newEnv(t, envOpts{})
			host, paths := servePaths(t, e.srv)
			data := map[string][]byte{"db_password": e.canary("db"), "api_key": e.canary("api")}
			in, _ := json.Marshal(data)
			cmd := exec.Command(bin, host)
			cmd.Stdin = bytes.NewReader(in)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			var r mobyReport
			if jerr := json.Unmarshal(out, &r); jerr != nil || err != nil || r.Fatal != "" {
				t.Fatalf("moby client %s: %v %v\nstdout: %s\nstderr: %s", c.name, err, jerr, out, stderr.String())
			}
			e.checkNoData("the client's report", out)

			if r.PingAPIVersion != "1.55" || r.ClientVersion != c.version || !r.SwarmManager {
				t.Errorf("ping: server %s, negotiated %s, manager %v; want 1.55, %s, true", r.PingAPIVersion, r.ClientVersion, r.SwarmManager, c.version)
			}
			if id := r.Created["db_password"]; id == "" || e.inspect("db_password").ID != id || r.Created["api_key"] == "" || r.Created["api_key"] == id {
				t.Errorf("created %v; the store has db_password as %s", r.Created, e.inspect("db_password").ID)
			}
			for filter, want := range map[string][]string{
				"":             {"api_key", "db_password"},
				"name=db":      {"db_password"},
				"label=team":   {"api_key", "db_password"},
				"label=team=b": {"api_key"},
				"id=prefix":    {"api_key"},
				"after remove": {"db_password"},
			} {
				if got := r.Lists[filter]; !slices.Equal(got, want) {
					t.Errorf("list %q = %v, want %v", filter, got, want)
				}
			}
			if r.InspectName != "db_password" || !maps.Equal(r.InspectLabels, map[string]string{"team": "a", "tier": "db"}) || r.InspectHasData {
				t.Errorf("inspect: name %q, labels %v, data shown %v", r.InspectName, r.InspectLabels, r.InspectHasData)
			}
			if want := map[string]string{"team": "c", "rotated": "yes"}; !maps.Equal(r.UpdatedLabels, want) || !maps.Equal(e.inspect("db_password").Spec.Labels, want) {
				t.Errorf("after the label update the client sees %v, the store holds %v; want %v", r.UpdatedLabels, e.inspect("db_password").Spec.Labels, want)
			}
			if e.reveal("db_password", 0) != string(data["db_password"]) {
				t.Errorf("the label update changed the data")
			}
			if !strings.Contains(r.StaleUpdate, "update out of sequence") {
				t.Errorf("update at a stale version: %q, want an out-of-sequence conflict", r.StaleUpdate)
			}
			if !r.RemovedByPrefix || !r.RemoveNotFound || r.RemoveAgain != "Error response from daemon: secret 'api_key' not found" {
				t.Errorf("remove: by prefix %v; again: %q (not found: %v)", r.RemovedByPrefix, r.RemoveAgain, r.RemoveNotFound)
			}

			seen := paths()
			if len(seen) < 10 || seen[0] != "/_ping" {
				t.Fatalf("requests %v: want the ping first, then the rest", seen)
			}
			for _, p := range seen[1:] {
				if !strings.HasPrefix(p, "/v"+c.version+"/secrets") {
					t.Errorf("request %s is not a secrets request at the negotiated /v%s/", p, c.version)
				}
			}
		})
	}
}
