package plugin_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/sdk"
	"github.com/docker/go-plugins-helpers/secrets"

	"github.com/secretd/secretd/internal/source"
	"github.com/secretd/secretd/internal/source/plugin"
)

// fakeDriver is a Swarm secret driver written with go-plugins-helpers, as a
// third party would write one. It answers by secret name and records what
// it was asked.
type fakeDriver struct {
	mu    sync.Mutex
	asked []secrets.Request
	hang  chan struct{} // when set, Get blocks until it is closed
}

func (d *fakeDriver) Get(req secrets.Request) secrets.Response {
	d.mu.Lock()
	d.asked = append(d.asked, req)
	hang := d.hang
	d.mu.Unlock()
	if hang != nil {
		<-hang
	}
	switch req.SecretName {
	case "db":
		return secrets.Response{Value: []byte("CANARY-plugin-db")}
	case "otp":
		return secrets.Response{Value: []byte("CANARY-plugin-otp-" + req.TaskID), DoNotReuse: true}
	case "denied":
		return secrets.Response{Err: "vault: permission denied for " + req.ServiceName, Value: []byte("CANARY-leak")}
	case "empty":
		return secrets.Response{}
	case "huge":
		return secrets.Response{Value: make([]byte, source.MaxSize)}
	}
	return secrets.Response{Err: "no such secret " + req.SecretName}
}

func (d *fakeDriver) last() secrets.Request {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.asked[len(d.asked)-1]
}

// serve serves h on a listener until the test ends.
func serve(t testing.TB, l net.Listener, h interface{ Serve(net.Listener) error }) {
	t.Helper()
	go func() { _ = h.Serve(l) }()
	t.Cleanup(func() { l.Close() })
}

// servePlugin serves d on a unix socket at path.
func servePlugin(t testing.TB, path string, d *fakeDriver) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	serve(t, l, secrets.NewHandler(d))
}

// dirs makes an empty sockets directory and two specs directories.
func dirs(t testing.TB) *plugin.Registry {
	root, err := os.MkdirTemp("", "plug") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	r := &plugin.Registry{
		SocketsDir: filepath.Join(root, "run"),
		SpecsDirs:  []string{filepath.Join(root, "etc"), filepath.Join(root, "lib")},
	}
	for _, d := range append([]string{r.SocketsDir}, r.SpecsDirs...) {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

var container = source.Container{
	ID:       "c0ffee",
	Name:     "web-1",
	Image:    "busybox:latest",
	Hostname: "web",
	Labels:   map[string]string{"tier": "front"},
}

func fetch(t *testing.T, r *plugin.Registry, driver, secret string) (source.Value, error) {
	t.Helper()
	d := &source.Drivers{Plugins: r}
	return d.Fetch(context.Background(), driver, source.Request{
		SecretID:     "sid",
		SecretName:   secret,
		SecretLabels: map[string]string{"path": "kv/db"},
		Options:      map[string]string{"token": "CANARY-token"},
		Container:    container,
	})
}

func wantErr(t *testing.T, err error, kind error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", kind)
	}
	if !errors.Is(err, kind) {
		t.Errorf("error %q is not %v", err, kind)
	}
	var se *source.Error
	if !errors.As(err, &se) {
		t.Errorf("error %q is not a *source.Error", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
	if strings.Contains(err.Error(), "CANARY") {
		t.Errorf("error %q holds a value or an option", err)
	}
}

func TestSocketPlugin(t *testing.T) {
	r := dirs(t)
	d := &fakeDriver{}
	servePlugin(t, filepath.Join(r.SocketsDir, "vaultish.sock"), d)

	v, err := fetch(t, r, "vaultish", "db")
	if err != nil {
		t.Fatal(err)
	}
	if string(v.Data) != "CANARY-plugin-db" || v.DoNotReuse {
		t.Errorf("value %q DoNotReuse=%v", v.Data, v.DoNotReuse)
	}
	got := d.last()
	want := secrets.Request{
		SecretName:      "db",
		SecretLabels:    map[string]string{"path": "kv/db"},
		ServiceHostname: "web",
		ServiceName:     "web-1",
		ServiceID:       "c0ffee",
		ServiceLabels:   map[string]string{"tier": "front"},
		TaskID:          "c0ffee",
		TaskName:        "web-1",
		TaskImage:       "busybox:latest",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the plugin was asked\n%+v\nwant\n%+v", got, want)
	}

	// DoNotReuse comes through, and each container is asked for.
	v, err = fetch(t, r, "vaultish", "otp")
	if err != nil {
		t.Fatal(err)
	}
	if string(v.Data) != "CANARY-plugin-otp-c0ffee" || !v.DoNotReuse {
		t.Errorf("value %q DoNotReuse=%v, want a one-off value", v.Data, v.DoNotReuse)
	}
}

func TestComposeServiceName(t *testing.T) {
	c := container
	c.Labels = map[string]string{"com.docker.compose.project": "todo", "com.docker.compose.service": "db"}
	got := plugin.NewRequest(source.Request{SecretName: "x", Container: c})
	if got.ServiceName != "todo_db" || got.TaskName != "web-1" {
		t.Errorf("service %q task %q, want todo_db and web-1", got.ServiceName, got.TaskName)
	}
}

func TestPluginErrors(t *testing.T) {
	r := dirs(t)
	servePlugin(t, filepath.Join(r.SocketsDir, "vaultish", "vaultish.sock"), &fakeDriver{})

	_, err := fetch(t, r, "vaultish", "denied")
	wantErr(t, err, source.ErrUnavailable, `secret 'denied': secret driver plugin "vaultish": `, "vault: permission denied for web-1")

	_, err = fetch(t, r, "vaultish", "empty")
	wantErr(t, err, source.ErrInvalidValue, "empty value")

	_, err = fetch(t, r, "vaultish", "huge")
	wantErr(t, err, source.ErrInvalidValue, "512000 bytes or more")
}

func TestMissingPlugin(t *testing.T) {
	r := dirs(t)
	_, err := fetch(t, r, "nowhere", "db")
	wantErr(t, err, source.ErrUnknownDriver, `secret 'db': secret driver "nowhere": `, `no plugin "nowhere"`, r.SocketsDir+"/nowhere.sock")

	for _, bad := range []string{"../etc/x", "a/b", "..", ".hidden"} {
		_, err := fetch(t, r, bad, "db")
		wantErr(t, err, source.ErrUnknownDriver, "is not a valid plugin name")
	}

	// A socket left by a dead plugin.
	l, err := net.Listen("unix", filepath.Join(r.SocketsDir, "dead.sock"))
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	_, err = fetch(t, r, "dead", "db")
	wantErr(t, err, source.ErrUnavailable, `cannot reach plugin "dead"`)
}

func TestNotASecretDriver(t *testing.T) {
	r := dirs(t)
	l, err := net.Listen("unix", filepath.Join(r.SocketsDir, "vol.sock"))
	if err != nil {
		t.Fatal(err)
	}
	serve(t, l, sdk.NewHandler(`{"Implements": ["VolumeDriver"]}`))
	_, err = fetch(t, r, "vol", "db")
	wantErr(t, err, source.ErrUnknownDriver, `plugin "vol" is not a secret driver: it implements VolumeDriver, not secretprovider`)
	err = (&source.Drivers{Plugins: r}).Validate(context.Background(), "db", "vol", nil)
	wantErr(t, err, source.ErrUnknownDriver, "is not a secret driver")
}

func TestHangingPlugin(t *testing.T) {
	r := dirs(t)
	r.Timeout = time.Second
	d := &fakeDriver{hang: make(chan struct{})}
	t.Cleanup(func() { close(d.hang) })
	servePlugin(t, filepath.Join(r.SocketsDir, "slow.sock"), d)
	_, err := fetch(t, r, "slow", "db")
	wantErr(t, err, source.ErrTimeout, `plugin "slow" did not answer SecretProvider.GetSecret within 1s`)
}

// TestSpecFiles finds plugins through .spec and .json files, in the order
// dockerd looks, and the socket first.
func TestSpecFiles(t *testing.T) {
	r := dirs(t)
	elsewhere, err := os.MkdirTemp("", "sock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(elsewhere) })
	sock := filepath.Join(elsewhere, "p.sock")
	servePlugin(t, sock, &fakeDriver{})

	write := func(path, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(r.SpecsDirs[1], "byspec.spec"), "unix://"+sock+"\n")
	write(filepath.Join(r.SpecsDirs[0], "byjson", "byjson.json"), `{"Name": "byjson", "Addr": "unix://`+sock+`"}`)
	// Over TCP on loopback, as some plugins are set up.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, l, secrets.NewHandler(&fakeDriver{}))
	write(filepath.Join(r.SpecsDirs[0], "bytcp.spec"), "tcp://"+l.Addr().String())

	for _, name := range []string{"byspec", "byjson", "bytcp"} {
		v, err := fetch(t, r, name, "db")
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if string(v.Data) != "CANARY-plugin-db" {
			t.Errorf("%s: value %q", name, v.Data)
		}
	}

	addr, err := r.Locate("byjson")
	if err != nil || addr.From != filepath.Join(r.SpecsDirs[0], "byjson", "byjson.json") {
		t.Errorf("byjson located at %+v, %v", addr, err)
	}
	// A socket in the sockets directory wins over a spec of the same name.
	servePlugin(t, filepath.Join(r.SocketsDir, "byspec.sock"), &fakeDriver{})
	if addr, err := r.Locate("byspec"); err != nil || addr.From != filepath.Join(r.SocketsDir, "byspec.sock") {
		t.Errorf("byspec located at %+v, %v; want the socket", addr, err)
	}

	write(filepath.Join(r.SpecsDirs[0], "noproto.spec"), "/run/x.sock")
	_, err = fetch(t, r, "noproto", "db")
	wantErr(t, err, source.ErrUnavailable, "has no protocol")
	write(filepath.Join(r.SpecsDirs[0], "badjson.json"), "{")
	_, err = fetch(t, r, "badjson", "db")
	wantErr(t, err, source.ErrUnavailable, "is not valid JSON")
}

// TestPluginRestart checks a plugin that went away and came back on a new
// socket is activated again, not called through a stale connection.
func TestPluginRestart(t *testing.T) {
	r := dirs(t)
	path := filepath.Join(r.SocketsDir, "flaky.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	activations := 0
	var mu sync.Mutex
	mux := http.NewServeMux()
	mux.HandleFunc("/Plugin.Activate", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		activations++
		mu.Unlock()
		fmt.Fprintln(w, `{"Implements": ["secretprovider"]}`)
	})
	mux.HandleFunc("/SecretProvider.GetSecret", func(w http.ResponseWriter, req *http.Request) {
		var sr secrets.Request
		if sdk.DecodeRequest(w, req, &sr) == nil {
			sdk.EncodeResponse(w, secrets.Response{Value: []byte("v")}, false)
		}
	})
	s1 := &http.Server{Handler: mux}
	go s1.Serve(l)
	if _, err := fetch(t, r, "flaky", "db"); err != nil {
		t.Fatal(err)
	}
	s1.Close()
	if _, err := fetch(t, r, "flaky", "db"); err == nil {
		t.Fatal("a fetch from a stopped plugin succeeded")
	}
	os.Remove(path)
	l2, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	s2 := &http.Server{Handler: mux}
	go s2.Serve(l2)
	t.Cleanup(func() { s2.Close() })
	if _, err := fetch(t, r, "flaky", "db"); err != nil {
		t.Fatalf("after the plugin came back: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if activations != 2 {
		t.Errorf("%d activations, want 2 (one per plugin start)", activations)
	}
}

func TestPluginOptionsRefused(t *testing.T) {
	r := dirs(t)
	servePlugin(t, filepath.Join(r.SocketsDir, "vaultish.sock"), &fakeDriver{})
	d := &source.Drivers{Plugins: r}
	err := d.Validate(context.Background(), "db", "vaultish", map[string]string{"token": "CANARY-token"})
	wantErr(t, err, source.ErrInvalidOptions, `secret driver plugins get no driver options (Swarm sends none; given: token)`)
	if err := d.Validate(context.Background(), "db", "vaultish", nil); err != nil {
		t.Errorf("no options: %v", err)
	}
}

// TestErrWithOK covers a plugin not built on the helpers that answers 200
// with Err set: still an error, naming the plugin.
func TestErrWithOK(t *testing.T) {
	r := dirs(t)
	l, err := net.Listen("unix", filepath.Join(r.SocketsDir, "raw.sock"))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/Plugin.Activate", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, `{"Implements": ["secretprovider"]}`)
	})
	mux.HandleFunc("/SecretProvider.GetSecret", func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost || req.Header.Get("Accept") != "application/vnd.docker.plugins.v1.2+json" {
			http.Error(w, "not as dockerd asks", http.StatusBadRequest)
			return
		}
		fmt.Fprintln(w, `{"Err": "token expired", "Value": "Q0FOQVJZLWxlYWs="}`)
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	_, err = fetch(t, r, "raw", "db")
	wantErr(t, err, source.ErrUnavailable, `secret 'db': secret driver plugin "raw": source unavailable: the plugin answered: token expired`)
}
