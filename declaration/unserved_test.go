package declaration

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
)

func TestWarnUnserved(t *testing.T) {
	ours := func(d string) bool { return d == "secretd" }
	label := map[string]string{"secretd.secrets": "db_password"}
	vol := func(driver string) container.MountPoint {
		return container.MountPoint{Type: mount.TypeVolume, Driver: driver, Destination: "/run/secrets"}
	}
	for _, tc := range []struct {
		name string
		c    container.Summary
		want bool
	}{
		{"label, no volume", container.Summary{ID: "abc", Names: []string{"/web"}, Labels: label}, true},
		{"label, another driver's volume", container.Summary{ID: "abc", Names: []string{"/web"}, Labels: label, Mounts: []container.MountPoint{vol("local")}}, true},
		{"label and a secretd volume", container.Summary{ID: "abc", Labels: label, Mounts: []container.MountPoint{vol("local"), vol("secretd")}}, false},
		{"no label", container.Summary{ID: "abc", Names: []string{"/web"}}, false},
	} {
		var buf bytes.Buffer
		got := WarnUnserved(slog.New(slog.NewTextHandler(&buf, nil)), tc.c, ours)
		if got != tc.want {
			t.Errorf("%s: warned %v, want %v", tc.name, got, tc.want)
		}
		if tc.want && (!strings.Contains(buf.String(), "level=WARN") || !strings.Contains(buf.String(), "container=web")) {
			t.Errorf("%s: log %q does not warn naming the container", tc.name, buf.String())
		}
		if !tc.want && buf.Len() != 0 {
			t.Errorf("%s: logged %q", tc.name, buf.String())
		}
	}
}
