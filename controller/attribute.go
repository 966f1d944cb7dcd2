package controller

import (
	"time"

	"github.com/docker/docker/api/types/container"
)

// A Mount never asks the engine which container it is for: the engine says
// so right after. Once the driver's Mount returns, dockerd emits a volume
// "mount" event naming the container, and then the container's "start"
// event with its name and labels. These two steps give a task its
// container; a resync does both for any task whose events were missed.
// Which secrets a mount holds never depends on them: only the name in
// `secretd ps`, the audit trail, on-update actions and in-use answers do.

// attribute handles a volume mount event of this driver: the oldest task
// of the volume that no container claims yet is the one this mount made.
// An event for a container that already holds a task of the volume (a
// resync named it first) is that task's. dest is where the container
// mounts the volume.
func (c *Controller) attribute(volume, containerID, dest string) {
	if containerID == "" {
		return
	}
	var t *task
	var since time.Time
	for _, x := range c.tasks.all() {
		v := x.view()
		if v.volume != volume || !v.live() || v.shared {
			continue
		}
		if v.containerID == containerID {
			return
		}
		if v.containerID == "" && (t == nil || v.since.Before(since)) {
			t, since = x, v.since
		}
	}
	if t == nil {
		return
	}
	if v, ok := t.claim(containerID, dest); ok {
		c.root.claimed(v)
	}
}

// identity is what events and lists say of a container.
type identity struct {
	ID     string
	Name   string
	Image  string
	Labels map[string]string
	// Mounts are the container's mounts, from a list; none from an event.
	Mounts []container.MountPoint
}

func identityOf(s container.Summary) identity {
	img := s.ImageID
	if img == "" {
		img = s.Image
	}
	return identity{ID: s.ID, Name: summaryName(s), Image: img, Labels: s.Labels, Mounts: s.Mounts}
}

// dest is where the container mounts volume; "" when not known.
func (o identity) dest(volume string) string {
	for _, m := range o.Mounts {
		if m.Type == "volume" && m.Name == volume {
			return m.Destination
		}
	}
	return ""
}

// identify gives the container's name and image to its tasks that lack
// them, from a start event or a resync, and writes their mount to the
// audit trail now that it can name the container. A task is named once,
// so it is audited once, and its on-update label checked once.
func (c *Controller) identify(o identity) {
	var named []taskView
	for _, t := range c.tasks.all() {
		if v, ok := t.identify(o); ok {
			named = append(named, v)
		}
	}
	for _, s := range named {
		auditMount(c.cfg.Audit, s)
		c.binding.checkOnUpdate(s, o.Labels)
	}
}

// checkOnUpdate warns about a container whose secretd.on-update label is
// not what its volume does after a rotation. The volume's on-update was
// fixed before its first Mount ended, from its option or from the label
// of the container created with it; a later container on the same volume
// (a shared named volume, a compose service recreated over its volume)
// gets the volume's, as it gets the volume's declaration. Its label is
// read only here, from its start event, when its start can no longer be
// refused: the warning is all that can be said.
func (b *binding) checkOnUpdate(s taskView, labels map[string]string) {
	v, ok := b.vols.get(s.volume)
	if !ok {
		return
	}
	label, labelled := labels[LabelOnUpdate]
	o, err := ParseOnUpdate(label)
	switch {
	case v.OnUpdate == "" && err != nil:
		// A volume bound by an earlier version, not learned yet.
		b.log.Warn("on-update label means nothing: the container is neither signalled nor restarted after a rotation",
			"container", s.label(), "volume", s.volume, "err", err)
	case v.OnUpdate == "":
	case err != nil:
		b.log.Warn("on-update label means nothing: the container gets its volume's on-update", "container", s.label(),
			"volume", s.volume, "on_update", v.OnUpdate, "err", err)
	case o.String() != v.OnUpdate && (labelled || v.Options[OptionOnUpdate] == ""):
		b.log.Warn("on-update label differs from its volume's, which was fixed before: the container gets its volume's",
			"container", s.label(), "volume", s.volume, "label", label, "on_update", v.OnUpdate)
	}
}
