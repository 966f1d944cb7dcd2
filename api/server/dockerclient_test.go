package server_test

import (
	"context"
	"encoding/json"
	"maps"
	"net"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	dockerclient "github.com/docker/docker/client"

	"github.com/secretd/secretd/api/server"
	"github.com/secretd/secretd/internal/audit"
)

// dockerClient serves srv on a unix socket and returns the Docker Go client
// at the project's pinned version, talking to it as to an engine.
func dockerClient(t *testing.T, srv *server.Server) *dockerclient.Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "d.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	c, err := dockerclient.NewClientWithOpts(dockerclient.WithHost("unix://"+sock), dockerclient.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return c
}

// TestDockerGoClient drives the Docker-shaped API with the Docker Go client,
// the way moby's own integration tests drive Swarm's secrets.
func TestDockerGoClient(t *testing.T) {
	e := newEnv(t, envOpts{})
	c := dockerClient(t, e.srv)
	ctx := context.Background()

	// Ping with negotiation: the client speaks the lower of its own 1.51
	// and secretd's 1.55, and sees a Swarm manager.
	p, err := c.Ping(ctx)
	if err != nil {
		t.Fatalf("ping: %v", err)
	}
	c.NegotiateAPIVersionPing(p)
	if p.APIVersion != "1.55" || c.ClientVersion() != "1.51" || p.SwarmStatus == nil || !p.SwarmStatus.ControlAvailable || p.OSType != "linux" {
		t.Errorf("ping: %+v, negotiated %s; want API 1.55, 1.51, a manager on linux", p, c.ClientVersion())
	}

	spec := func(name string, labels map[string]string, data []byte) swarm.SecretSpec {
		return swarm.SecretSpec{Annotations: swarm.Annotations{Name: name, Labels: labels}, Data: data}
	}
	db, err := c.SecretCreate(ctx, spec("db_password", map[string]string{"team": "a", "tier": "db"}, e.canary("db")))
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	api, err := c.SecretCreate(ctx, spec("api_key", map[string]string{"team": "b"}, e.canary("api")))
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if _, err := c.SecretCreate(ctx, spec("db_password", nil, e.canary("dup"))); !cerrdefs.IsConflict(err) || err.Error() != "Error response from daemon: secret db_password already exists" {
		t.Errorf("duplicate create: %v", err)
	}

	// Inspect: the raw body is exactly what the client decoded, and
	// carries no data.
	got, raw, err := c.SecretInspectWithRaw(ctx, "db_password")
	if err != nil {
		t.Fatalf("inspect: %v", err)
	}
	e.checkNoData("inspect", raw)
	var fromRaw swarm.Secret
	if err := json.Unmarshal(raw, &fromRaw); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, fromRaw) || got.ID != db.ID || got.Spec.Name != "db_password" || got.Spec.Data != nil {
		t.Errorf("inspect decoded %+v, raw body decodes to %+v", got, fromRaw)
	}
	if _, _, err := c.SecretInspectWithRaw(ctx, "nosuch"); !cerrdefs.IsNotFound(err) || err.Error() != "Error response from daemon: secret 'nosuch' not found" {
		t.Errorf("inspect missing: %v", err)
	}

	// List filters, as `docker secret ls --filter` sends them.
	list := func(kv ...string) []string {
		t.Helper()
		f := filters.NewArgs()
		for i := 0; i < len(kv); i += 2 {
			f.Add(kv[i], kv[i+1])
		}
		l, err := c.SecretList(ctx, swarm.SecretListOptions{Filters: f})
		if err != nil {
			t.Fatalf("list %v: %v", kv, err)
		}
		var names []string
		for _, s := range l {
			names = append(names, s.Spec.Name)
		}
		slices.Sort(names)
		return names
	}
	for _, tc := range []struct {
		filter []string
		want   []string
	}{
		{nil, []string{"api_key", "db_password"}},
		{[]string{"name", "db"}, []string{"db_password"}},
		{[]string{"id", api.ID[:8]}, []string{"api_key"}},
		{[]string{"label", "team"}, []string{"api_key", "db_password"}},
		{[]string{"label", "team=b"}, []string{"api_key"}},
		{[]string{"label", "tier"}, []string{"db_password"}},
	} {
		if got := list(tc.filter...); !slices.Equal(got, tc.want) {
			t.Errorf("list %v = %v, want %v", tc.filter, got, tc.want)
		}
	}

	// Label updates by full ID, by name and by ID prefix, each at the
	// version inspect returned, as moby's tests do.
	relabel := func(ref string, labels map[string]string) {
		t.Helper()
		cur, _, err := c.SecretInspectWithRaw(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		cur.Spec.Labels = labels
		if err := c.SecretUpdate(ctx, ref, cur.Version, cur.Spec); err != nil {
			t.Fatalf("update %s: %v", ref, err)
		}
		after, _, err := c.SecretInspectWithRaw(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(after.Spec.Labels, labels) || after.Version.Index <= cur.Version.Index {
			t.Errorf("after update of %s: labels %v at index %d, want %v after index %d", ref, after.Spec.Labels, after.Version.Index, labels, cur.Version.Index)
		}
		if e.reveal("db_password", 0) != string(e.sent[0]) {
			t.Errorf("a label update changed the data")
		}
	}
	relabel(db.ID, map[string]string{"team": "c"})
	relabel("db_password", map[string]string{"team": "c", "rotated": "yes"})
	relabel(db.ID[:10], map[string]string{})
	if got := list("label", "team=c"); len(got) != 0 {
		t.Errorf("labels cleared, yet label team=c lists %v", got)
	}

	cur, _, err := c.SecretInspectWithRaw(ctx, "db_password")
	if err != nil {
		t.Fatal(err)
	}
	before := e.dump()
	stale := cur.Version
	stale.Index--
	if err := c.SecretUpdate(ctx, "db_password", stale, cur.Spec); !cerrdefs.IsConflict(err) {
		t.Errorf("update at a stale version: %v", err)
	}
	withData := cur.Spec
	withData.Data = e.canary("new")
	if err := c.SecretUpdate(ctx, "db_password", cur.Version, withData); !cerrdefs.IsInvalidArgument(err) || err.Error() != "Error response from daemon: only updates to Labels are allowed" {
		t.Errorf("update with data: %v", err)
	}
	renamed := cur.Spec
	renamed.Name = "other"
	if err := c.SecretUpdate(ctx, "db_password", cur.Version, renamed); !cerrdefs.IsInvalidArgument(err) || err.Error() != "Error response from daemon: only updates to Labels are allowed" {
		t.Errorf("update renaming: %v", err)
	}
	if err := c.SecretUpdate(ctx, "nosuch", cur.Version, spec("nosuch", nil, nil)); !cerrdefs.IsNotFound(err) || err.Error() != "Error response from daemon: secret 'nosuch' not found" {
		t.Errorf("update missing: %v", err)
	}
	if after := e.dump(); !reflect.DeepEqual(before, after) {
		t.Errorf("refused updates changed the store:\nbefore %+v\nafter  %+v", before, after)
	}

	// Remove by ID prefix.
	if err := c.SecretRemove(ctx, api.ID[:12]); err != nil {
		t.Fatalf("remove by prefix: %v", err)
	}
	if got := list(); !slices.Equal(got, []string{"db_password"}) {
		t.Errorf("after remove: %v", got)
	}
	if err := c.SecretRemove(ctx, "api_key"); !cerrdefs.IsNotFound(err) || err.Error() != "Error response from daemon: secret 'api_key' not found" {
		t.Errorf("remove again: %v", err)
	}
}

// TestLabelUpdateAudited: a label update through the Docker path is in the
// trail as secret.labels, with the peer's credentials.
func TestLabelUpdateAudited(t *testing.T) {
	srv, _, _, trail, _ := auditEnv(t, false, &fakeTasks{})
	c := dockerClient(t, srv)
	ctx := context.Background()
	resp, err := c.SecretCreate(ctx, swarm.SecretSpec{Annotations: swarm.Annotations{Name: "db"}, Data: []byte("audit-labels-canary")})
	if err != nil {
		t.Fatal(err)
	}
	cur, _, err := c.SecretInspectWithRaw(ctx, resp.ID)
	if err != nil {
		t.Fatal(err)
	}
	cur.Spec.Labels = map[string]string{"team": "a"}
	if err := c.SecretUpdate(ctx, "db", cur.Version, cur.Spec); err != nil {
		t.Fatal(err)
	}
	got := trailLines(t, trail.String())
	if len(got) != 2 || got[1]["event"] != audit.SecretLabels || got[1]["secret"] != "db" || got[1]["secret_id"] != resp.ID || got[1]["actor"] == nil {
		t.Errorf("trail:\n%s", trail.String())
	}
}
