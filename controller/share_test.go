package controller_test

import (
	"context"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
)

// TestLabelSplitsAcrossVolumes: one secretd.secrets label serves a
// container with two secretd volumes, each getting only the entries whose
// targets it holds (the old code bound the whole label to every volume of
// the container).
func TestLabelSplitsAcrossVolumes(t *testing.T) {
	e := newEnv(t, 0)
	for _, n := range []string{"a", "b", "c", "d"} {
		e.secret(t, n, "secret-"+n)
	}
	e.vols.anon("v1")
	e.vols.anon("v2")
	label := "a;source=b,target=/etc/app/b.conf;source=c,target=/etc/app/sub/c;source=d,target=/run/secrets/dd"
	two := ctr("id-two", "two", container.StateCreated, 1, label, "v1", "v2")
	two.Mounts[1].Destination = "/etc/app"
	e.engine.Set(two)
	d1, d2 := e.mount(t, "v1", "m1"), e.mount(t, "v2", "m2")
	wantFiles(t, "volume at /run/secrets", d1, "a", "dd")
	wantFiles(t, "volume at /etc/app", d2, "b.conf", "sub/c")
	if got := readFiles(t, d2); got["b.conf"] != "secret-b" || got["sub/c"] != "secret-c" {
		t.Errorf("volume at /etc/app holds %v", got)
	}
	v2, _ := e.ctrl.Volume("v2")
	if strings.Contains(v2.Declaration, "source=a,") || strings.Contains(v2.Declaration, "/etc/app") {
		t.Errorf("v2 bound to %q, want only its own entries, relative to it", v2.Declaration)
	}

	// A container whose only secretd volume is elsewhere takes the label
	// whole, as before.
	e.vols.anon("v3")
	one := ctr("id-one", "one", container.StateCreated, 2, "a;b", "v3")
	one.Mounts[0].Destination = "/secrets"
	e.engine.Set(one)
	wantFiles(t, "only volume, at /secrets", e.mount(t, "v3", "m3"), "a", "b")
	if v3, _ := e.ctrl.Volume("v3"); v3.Declaration != "a;b" {
		t.Errorf("v3 bound to %q, want the label as written", v3.Declaration)
	}
}

// TestLabelSplitErrors: an entry that no volume of the container holds,
// and a volume the label gives nothing, fail the Mount and bind nothing.
func TestLabelSplitErrors(t *testing.T) {
	e := newEnv(t, 0)
	e.secret(t, "a", "x")
	e.secret(t, "b", "y")
	for _, c := range []struct{ label, dst2, want string }{
		{"a;source=b,target=/opt/b", "/etc/app", "entry for b has the target /opt/b, which no secretd volume of the container holds"},
		{"a;b", "/etc/app", "declares nothing for volume v2 at /etc/app"},
		{"a;source=b,target=/etc/app", "/etc/app", "target /etc/app is where volume v2 is mounted"},
	} {
		e.vols.anon("v1")
		e.vols.anon("v2")
		two := ctr("id-two", "two", container.StateCreated, 1, c.label, "v1", "v2")
		two.Mounts[1].Destination = c.dst2
		e.engine.Set(two)
		_, err := e.ctrl.Mount(context.Background(), "v2", "m2")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("label %q: %v, want an error saying %q", c.label, err, c.want)
		}
		if v, _ := e.ctrl.Volume("v2"); v.Bound() {
			t.Errorf("label %q: a refused binding bound v2: %+v", c.label, v)
		}
		e.ctrl.RemoveVolume("v1")
		e.ctrl.RemoveVolume("v2")
	}
	// Two secretd volumes and none at /run/secrets: a relative target has
	// no volume.
	e.vols.anon("v1")
	e.vols.anon("v2")
	two := ctr("id-two", "two", container.StateCreated, 1, "a;source=b,target=/etc/app/b", "v1", "v2")
	two.Mounts[0].Destination = "/data"
	two.Mounts[1].Destination = "/etc/app"
	e.engine.Set(two)
	if _, err := e.ctrl.Mount(context.Background(), "v2", "m2"); err == nil || !strings.Contains(err.Error(), "relative target a") {
		t.Errorf("relative target without a volume at /run/secrets: %v", err)
	}
}
