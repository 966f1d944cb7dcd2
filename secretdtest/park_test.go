package secretdtest

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A parked slot answers dockerd's plugin protocol: it is a volume driver,
// knows no volume, and refuses to make or mount one.
func TestParkedSlotAnswers(t *testing.T) {
	dir := tempPluginDir(t)

	park("slot-x")
	sock := filepath.Join(dir, "slot-x.sock")
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	call := func(method string) map[string]any {
		t.Helper()
		resp, err := hc.Post("http://plugin/"+method, "application/vnd.docker.plugins.v1+json", strings.NewReader(`{"Name":"x"}`))
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		return out
	}
	if got := call("Plugin.Activate"); !strings.Contains(strings.Join(toStrings(got["Implements"]), ","), "VolumeDriver") {
		t.Errorf("Plugin.Activate = %v", got)
	}
	for _, m := range []string{"VolumeDriver.Get", "VolumeDriver.Create", "VolumeDriver.Mount"} {
		if got := call(m); got["Err"] == nil || got["Err"] == "" {
			t.Errorf("%s = %v, want an error", m, got)
		}
	}
	if got := call("VolumeDriver.List"); got["Err"] != nil && got["Err"] != "" {
		t.Errorf("VolumeDriver.List = %v", got)
	}

	// Taking the slot frees the path for the daemon that will listen on it.
	unpark("slot-x")
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket after unpark: %v", err)
	}
	park("slot-y")
	CloseParked()
	if _, err := os.Stat(filepath.Join(dir, "slot-y.sock")); !os.IsNotExist(err) {
		t.Errorf("socket after CloseParked: %v", err)
	}
}

func toStrings(v any) []string {
	var out []string
	if l, ok := v.([]any); ok {
		for _, x := range l {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

// dockerd reuses idle plugin connections; a parked slot must not keep any,
// or a request would reach it after a daemon took the slot over.
func TestParkedSlotClosesConnections(t *testing.T) {
	dir := tempPluginDir(t)
	park("slot-z")
	t.Cleanup(func() { unpark("slot-z") })
	c, err := net.Dial("unix", filepath.Join(dir, "slot-z.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req, _ := http.NewRequest(http.MethodPost, "http://plugin/VolumeDriver.Get", strings.NewReader(`{"Name":"x"}`))
	if err := req.Write(c); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !resp.Close {
		t.Errorf("parked slot answered with a keep-alive connection")
	}
}

// A slot this process parked and another process has since taken keeps
// the other process's socket when this one closes its parked slots.
func TestCloseParkedLeavesATakenSlot(t *testing.T) {
	dir := tempPluginDir(t)
	park("slot-t")
	// Another process's daemon replaces the file, as driver.Listen does.
	sock := filepath.Join(dir, "slot-t.sock")
	os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	CloseParked()
	if _, err := os.Stat(sock); err != nil {
		t.Errorf("the other daemon's socket is gone: %v", err)
	}
}

// tempPluginDir points park at a temporary directory for t.
func tempPluginDir(t *testing.T) string {
	dir := t.TempDir()
	old := pluginDir
	pluginDir = dir
	t.Cleanup(func() { pluginDir = old })
	return dir
}
