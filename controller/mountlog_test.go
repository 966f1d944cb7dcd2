package controller_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"

	"github.com/secretd/secretd/controller"
	"github.com/secretd/secretd/internal/enginesim"
)

// logLines returns the lines a test's logger wrote.
func logLines(b *syncBuffer) []string {
	return strings.Split(strings.TrimSpace(b.String()), "\n")
}

func withLog(b *syncBuffer) func(*controller.Config) {
	return func(c *controller.Config) {
		c.Log = slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
}

// TestMountRefusalsLogged checks that every refused Mount leaves a WARN
// line with its reason, whichever step refused it: dockerd shows the error
// to the user who ran the container, and only the log tells the operator.
func TestMountRefusalsLogged(t *testing.T) {
	var logs syncBuffer
	e := newEnv(t, 0, withLog(&logs), func(c *controller.Config) { c.MaxMountSize = 8 })
	e.secret(t, "small", "x")
	e.secret(t, "big", "0123456789")
	imaged := ctr("id-img", "imaged", container.StateCreated, 3, "small", "vimage")
	imaged.ImageID = "sha256:labelled"
	e.engine.SetImageLabels("sha256:labelled", map[string]string{controller.LabelSecrets: "small"})
	e.engine.Set(ctr("id-web", "web", container.StateCreated, 1, "", "vnolabel"), imaged)
	e.vols.set("vbig", "big")
	e.vols.set("vmissing", "nosuch")
	for _, c := range []struct{ volume, mountID, reason string }{
		{"vnone", "m1", "declares no secrets and no container uses it yet"},
		{"vnolabel", "m2", "container web using it has no " + controller.LabelSecrets + " label"},
		{"vimage", "m3", "comes from its image"},
		{"vbig", "m4", "hold more than 8 bytes"},
		{"vmissing", "m5", "not found"},
		{"vbig", "../m6", "invalid mount ID"},
	} {
		_, err := e.ctrl.Mount(context.Background(), c.volume, c.mountID)
		if err == nil || !strings.Contains(err.Error(), c.reason) {
			t.Fatalf("mount of %s: %v, want an error saying %q", c.volume, err, c.reason)
		}
		found := false
		for _, l := range logLines(&logs) {
			if strings.Contains(l, "level=WARN") && strings.Contains(l, `msg="mount refused"`) &&
				strings.Contains(l, "volume="+c.volume) && strings.Contains(l, c.reason) {
				found = true
			}
		}
		if !found {
			t.Errorf("refused mount of %s (%s) not logged at WARN with its reason; log:\n%s", c.volume, c.reason, strings.Join(logLines(&logs), "\n"))
		}
	}
}

// TestWarnUnservedAtCreate warns, naming the container, when a container
// created with a secretd.secrets label mounts no secretd volume: it starts
// without its secrets and nothing else says so. No volume is unbound, so
// nothing else makes the create event look the container up.
func TestWarnUnservedAtCreate(t *testing.T) { eachProfile(t, testWarnUnservedAtCreate) }

func testWarnUnservedAtCreate(t *testing.T, p *enginesim.Profile) {
	var logs syncBuffer
	e := newEnvOn(t, p, 0, withLog(&logs))
	e.secret(t, "a", "x")
	e.vols.set("vserved", "a")
	s := e.run(t)
	e.engine.Set(
		ctr("id-plain", "plain", container.StateCreated, 1, "a"),
		ctr("id-served", "served", container.StateCreated, 2, "a", "vserved"),
	)
	for _, id := range []string{"id-plain", "id-served"} {
		name := strings.TrimPrefix(id, "id-")
		s.Send(t, events.Message{Type: events.ContainerEventType, Action: events.ActionCreate,
			Actor: events.Actor{ID: id, Attributes: map[string]string{"name": name, "image": "busybox", controller.LabelSecrets: "a"}}})
	}
	s.Sync(t)
	e.ctrl.WaitLearning()
	warned := map[string]bool{}
	for _, l := range logLines(&logs) {
		if strings.Contains(l, "level=WARN") && strings.Contains(l, "mounts no secretd volume") {
			for _, n := range []string{"plain", "served"} {
				if strings.Contains(l, "container="+n+" ") {
					warned[n] = true
				}
			}
		}
	}
	if !warned["plain"] {
		t.Errorf("no warning names the container with a label and no secretd volume; log:\n%s", strings.Join(logLines(&logs), "\n"))
	}
	if warned["served"] {
		t.Error("a container with a secretd volume was warned about")
	}
}
