package driver_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/volume"

	"github.com/secretd/secretd/declaration"
	"github.com/secretd/secretd/internal/driver"
)

// TestFileVolume: a one-file volume (an absolute target) mounts at that
// file of its tmpfs, which the engine bind-mounts over the container path.
func TestFileVolume(t *testing.T) {
	e := newEnv(t)
	e.secret(t, "site.conf", "server {}")
	opts := map[string]string{driver.OptionSecrets: "source=site.conf,target=site.conf,mode=0440", declaration.OptionFile: "site.conf"}
	if err := e.drv.Create(&volume.CreateRequest{Name: "conf", Options: opts}); err != nil {
		t.Fatal(err)
	}
	r, err := e.drv.Mount(&volume.MountRequest{Name: "conf", ID: "f11e0001"})
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(e.root, "f11e0001", "site.conf")
	if r.Mountpoint != want {
		t.Fatalf("mountpoint %s, want the file %s", r.Mountpoint, want)
	}
	if b, err := os.ReadFile(r.Mountpoint); err != nil || string(b) != "server {}" {
		t.Errorf("mountpoint holds %q %v", b, err)
	}
	if p, err := e.drv.Path(&volume.PathRequest{Name: "conf"}); err != nil || p.Mountpoint != want {
		t.Errorf("path %q %v", p.Mountpoint, err)
	}
	if err := e.drv.Unmount(&volume.UnmountRequest{Name: "conf", ID: "f11e0001"}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		opts map[string]string
		want string
	}{
		{map[string]string{declaration.OptionFile: "x"}, "option file needs a secrets or configs option"},
		{map[string]string{driver.OptionSecrets: "a", declaration.OptionFile: "b"}, `option file="b" must name the target of the only entry of secrets`},
		{map[string]string{driver.OptionSecrets: "a;b", declaration.OptionFile: "a"}, `option file="a" must name the target of the only entry`},
		{map[string]string{driver.OptionSecrets: "a", "color": "red"}, `unknown option "color"`},
	} {
		err := e.drv.Create(&volume.CreateRequest{Name: "bad", Options: tc.opts})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("create %v: %v, want %q", tc.opts, err, tc.want)
		}
	}
	// The same name with another file option is another volume.
	opts2 := map[string]string{driver.OptionSecrets: "source=site.conf,target=other.conf", declaration.OptionFile: "other.conf"}
	if err := e.drv.Create(&volume.CreateRequest{Name: "conf", Options: opts2}); err == nil {
		t.Errorf("create conf again with other options succeeded")
	}
}
