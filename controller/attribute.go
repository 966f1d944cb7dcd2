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
// resync named it first) is that task's.
func (c *Controller) attribute(volume, containerID string) {
	if containerID == "" {
		return
	}
	var t *task
	var since time.Time
	for _, x := range c.tasks.all() {
		v := x.view()
		if v.volume != volume || !v.live() {
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
	if v, ok := t.claim(containerID); ok {
		c.root.claimed(v)
	}
}

// identity is what events and lists say of a container.
type identity struct {
	ID     string
	Name   string
	Image  string
	Labels map[string]string
}

func identityOf(s container.Summary) identity {
	img := s.ImageID
	if img == "" {
		img = s.Image
	}
	return identity{ID: s.ID, Name: summaryName(s), Image: img, Labels: s.Labels}
}

// identify gives the container's name, image and on-update label to its
// tasks that lack them, from a start event or a resync, and writes their
// mount to the audit trail now that it can name the container. A task is
// named once, so it is audited once.
func (c *Controller) identify(o identity) {
	onUpdate, err := ParseOnUpdate(o.Labels[LabelOnUpdate])
	if err != nil {
		c.cfg.Log.Warn("on-update label ignored", "container", o.Name, "err", err)
	}
	var named []taskView
	for _, t := range c.tasks.all() {
		if v, ok := t.identify(o, onUpdate); ok {
			named = append(named, v)
		}
	}
	for _, s := range named {
		auditMount(c.cfg.Audit, s)
	}
}
