package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
)

// Podman mounts a plugin volume once for all the containers that use it.
// It counts them itself: Mount comes when the first one starts, Unmount
// when the last one stops, both with one fixed mount ID for every volume
// and container (measured on Podman 4.3; libpod calls it a placeholder).
// Such a mount is shared: it is one task, found by its volume and that ID,
// and lives from that Mount to that Unmount, whichever containers come and
// go meanwhile. Its files are the volume's declaration, as for any mount;
// only the names of its containers (its members) come from events and
// resyncs. A resync keeps it while any container that mounts its volume
// is alive, and wipes it when none is. Docker's mounts, one per container
// start with an ID of their own, never share.

// PodmanMountID is the mount ID Podman sends in every Mount and Unmount of
// a plugin volume: the sha256 of "placeholder\n".
const PodmanMountID = "2f73349cfc4630255319c6c8dfc1b46a8996ace9d14d8e07563b165915918ec2"

// sharedMountID reports whether a mount ID is Podman's, whose mount every
// container of its volume shares.
func sharedMountID(id string) bool { return id == PodmanMountID }

// sharedPrefix names the directory of a shared mount made on demand, which
// its mount ID cannot name: every volume's is the same. It holds a dot,
// which mount IDs never do, so it cannot collide with theirs.
const sharedPrefix = "shared."

// sharedDirName names the directory of a volume's shared mount made on
// demand.
func sharedDirName(volume string) string {
	h := sha256.Sum256([]byte(volume))
	return sharedPrefix + hex.EncodeToString(h[:16])
}

// member is a container that reads a shared mount, and where it mounts
// the volume ("" when not known).
type member struct {
	id, name, image, dest string
}

func memberOf(o identity, volume string) member {
	return member{id: o.ID, name: o.Name, image: o.Image, dest: o.dest(volume)}
}

// reading reports whether a listed container reads a mount now: a shared
// mount's members are the containers that run, not the ones only created
// (which have not started, or are starting and will say so).
func reading(state string) bool {
	switch state {
	case container.StateRunning, container.StatePaused, container.StateRestarting:
		return true
	}
	return false
}

// membersOf are the listed containers that read a volume's shared mount.
func membersOf(volume string, users []container.Summary) []member {
	var out []member
	for _, s := range users {
		if reading(s.State) {
			out = append(out, memberOf(identityOf(s), volume))
		}
	}
	return out
}

// identityOfInspect is what an inspect says of a container.
func identityOfInspect(s container.InspectResponse) identity {
	o := identity{Mounts: s.Mounts}
	if s.ContainerJSONBase != nil {
		o.ID, o.Name, o.Image = s.ID, strings.TrimPrefix(s.Name, "/"), s.Image
	}
	if s.Config != nil {
		o.Labels = s.Config.Labels
		if o.Image == "" {
			o.Image = s.Config.Image
		}
	}
	return o
}

// joinShared makes a container that started a member of the shared mounts
// of the volumes it mounts. A start event does not say which volumes those
// are, so the engine is asked, and only while a shared mount is live:
// never on Docker. A lookup that fails asks for a resync, which names the
// members from the container list.
func (c *Controller) joinShared(ctx context.Context, id string) {
	byVolume := map[string]*task{}
	for _, t := range c.tasks.all() {
		if v := t.view(); v.shared && v.live() {
			byVolume[v.volume] = t
		}
	}
	if len(byVolume) == 0 || c.cfg.Engine == nil {
		return
	}
	ictx, cancel := context.WithTimeout(ctx, engineTimeout)
	s, err := c.cfg.Engine.ContainerInspect(ictx, id)
	cancel()
	if err != nil {
		c.cfg.Log.Warn("started container not looked up: the next resync names it", "container", shortID(id), "err", err)
		c.resyncReq.ask()
		return
	}
	o := identityOfInspect(s)
	if o.ID == "" {
		o.ID = id
	}
	for _, mp := range s.Mounts {
		if t := byVolume[mp.Name]; t != nil && c.binding.ourMount(mp) {
			for _, v := range t.join(memberOf(o, mp.Name)) {
				auditMount(c.cfg.Audit, v)
			}
		}
	}
}

// leave takes a container that stopped out of every shared mount's
// members. The mount itself stays until Podman's Unmount, or a resync that
// finds no container of its volume alive.
func (tt *taskTable) leave(id string) {
	for _, t := range tt.all() {
		t.leave(id)
	}
}

// engineKind is which engine secretd follows, as its version says: a
// Docker Engine never sends Podman's mount ID, and Podman sends nothing
// else.
type engineKind int32

const (
	kindUnknown engineKind = iota // not told yet
	kindDocker
	kindPodman
)

// versioner is an Engine that tells its version (the daemon's does; the
// simulator and the unit tests' fakes need not).
type versioner interface {
	ServerVersion(ctx context.Context) (types.Version, error)
}

// podmanComponent names Podman among the components of its /version.
const podmanComponent = "Podman Engine"

// learn asks engine which it is, once it answers: a resync calls it after
// its container list.
func (e *engineStatus) learn(ctx context.Context, engine Engine, log *slog.Logger) {
	v, ok := engine.(versioner)
	if !ok || engineKind(e.kind.Load()) != kindUnknown {
		return
	}
	vctx, cancel := context.WithTimeout(ctx, engineTimeout)
	sv, err := v.ServerVersion(vctx)
	cancel()
	if err != nil {
		log.Debug("the engine did not tell its version: asked again at the next resync", "err", err)
		return
	}
	kind := kindDocker
	if slices.ContainsFunc(sv.Components, func(cv types.ComponentVersion) bool { return cv.Name == podmanComponent }) {
		kind = kindPodman
	}
	e.kind.Store(int32(kind))
}

// fits refuses a Mount that another engine than the one secretd follows
// (at host) sends: a resync would find none of that engine's containers
// and wipe the mount under them. Before the engine has said which it is
// (at boot, before it answers) every Mount goes on.
func (e *engineStatus) fits(volume, mountID, host string) error {
	switch engineKind(e.kind.Load()) {
	case kindDocker:
		if sharedMountID(mountID) {
			return fmt.Errorf("volume %s: this Mount comes from Podman, but secretd follows the Docker Engine at %s and would not see Podman's containers: "+
				"run a secretd for Podman (secretd daemon --docker-host unix:///run/podman/podman.sock with a --driver-name of its own; see docs/podman.md)", volume, host)
		}
	case kindPodman:
		if !sharedMountID(mountID) {
			return fmt.Errorf("volume %s: this Mount is not Podman's, but secretd follows Podman at %s and would not see the other engine's containers: "+
				"run a secretd of its own for that engine, with a --driver-name of its own (see docs/podman.md)", volume, host)
		}
	}
	return nil
}

// podmanMountable refuses at once a Podman Mount that would have to ask the
// engine which container it is for (to learn a declaration or an
// on-update from labels): Podman holds the starting container's lock
// through the Mount, so its API answers no container list until the Mount
// returns, and the lookup could only time out. A volume learned before
// (at its container's create event, or a resync) mounts.
func (b *binding) podmanMountable(volume string) error {
	v, ok := b.vols.get(volume)
	switch {
	case ok && v.mountable():
		return nil
	case ok && v.Bound():
		return fmt.Errorf("volume %s has no %s option, and Podman cannot say during a Mount which container uses it, to read its %s label: "+
			"create the volume with -o %s=none (or signal:SIGNAL, or restart)", volume, OptionOnUpdate, LabelOnUpdate, OptionOnUpdate)
	default:
		return fmt.Errorf("volume %s declares no secrets, and Podman cannot say during a Mount which container uses it, to read its %s label: "+
			"create the volume with -o %s=... and -o %s=... (see docs/podman.md)", volume, LabelSecrets, OptionSecrets, OptionOnUpdate)
	}
}
