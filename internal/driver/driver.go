// Package driver adapts the controller to Docker's volume plugin protocol:
// dockerd calls Mount before a container's process starts and Unmount when
// it stops, on /run/docker/plugins/NAME.sock.
package driver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime/trace"
	"strings"
	"time"

	"github.com/docker/go-connections/sockets"
	"github.com/docker/go-plugins-helpers/volume"

	"github.com/secretd/secretd/controller"
	"github.com/secretd/secretd/declaration"
)

// OptionSecrets is the one volume option: the declaration.
const OptionSecrets = controller.OptionSecrets

// DefaultPluginDir is where dockerd looks for legacy plugin sockets.
const DefaultPluginDir = "/run/docker/plugins"

// mountTimeout bounds one Mount: dockerd waits on it with the container's
// start, so a stuck store must turn into an error, not a hang.
const mountTimeout = 30 * time.Second

// Backend is what the driver needs of the controller: its volume registry
// and the mounts of its volumes.
type Backend interface {
	// CreateVolume records a volume dockerd creates, with its options.
	CreateVolume(name string, opts map[string]string) error
	// RemoveVolume forgets a volume.
	RemoveVolume(name string) error
	// Volume returns the record of one volume.
	Volume(name string) (controller.Volume, bool)
	// Volumes returns every volume, sorted by name.
	Volumes() []controller.Volume
	// MountPoint returns the newest mounted directory of a volume.
	MountPoint(volume string) string
	// Mount builds the tmpfs of one container start and returns its path.
	Mount(ctx context.Context, volume, mountID string) (string, error)
	// Unmount wipes the tmpfs of one container stop.
	Unmount(volume, mountID string) error
}

var _ Backend = (*controller.Controller)(nil)

// Driver is the secretd volume driver: a thin adapter from the plugin
// protocol to the controller, which keeps the volumes.
type Driver struct {
	ctrl Backend
}

var _ volume.Driver = (*Driver)(nil)

// region marks one plugin call in an execution trace (SECRETD_TRACE), so
// the time a container start spends in secretd can be split by call.
func region(call string) *trace.Region {
	return trace.StartRegion(context.Background(), "VolumeDriver."+call)
}

// New returns the driver of ctrl.
func New(ctrl Backend) *Driver { return &Driver{ctrl: ctrl} }

// Create records a volume and binds a secrets option to it.
func (d *Driver) Create(req *volume.CreateRequest) error {
	defer region("Create").End()
	return d.ctrl.CreateVolume(req.Name, req.Options)
}

// Remove forgets a volume with its live grants and revokes; dockerd
// refuses to remove one in use.
func (d *Driver) Remove(req *volume.RemoveRequest) error {
	defer region("Remove").End()
	return d.ctrl.RemoveVolume(req.Name)
}

// fileOf is the mount point of a volume below its tmpfs: the one file of
// a one-file volume, the tmpfs itself otherwise.
func fileOf(r controller.Volume, dir string) string {
	if f := r.Options[declaration.OptionFile]; f != "" && dir != "" {
		return filepath.Join(dir, filepath.FromSlash(f))
	}
	return dir
}

func (d *Driver) toVolume(r controller.Volume) *volume.Volume {
	v := &volume.Volume{Name: r.Name, Mountpoint: fileOf(r, d.ctrl.MountPoint(r.Name)), CreatedAt: r.Created.Format(time.RFC3339)}
	if r.Bound() {
		// Names and targets only, never data; shown by `docker volume
		// inspect` under Status.
		v.Status = map[string]interface{}{OptionSecrets: r.Declaration, "bound_by": r.BoundBy}
		if r.OnUpdate != "" {
			v.Status["on_update"] = r.OnUpdate
		}
	}
	return v
}

// Get describes one volume.
func (d *Driver) Get(req *volume.GetRequest) (*volume.GetResponse, error) {
	defer region("Get").End()
	r, ok := d.ctrl.Volume(req.Name)
	if !ok {
		return nil, fmt.Errorf("no such volume: %s", req.Name)
	}
	return &volume.GetResponse{Volume: d.toVolume(r)}, nil
}

// List describes every volume.
func (d *Driver) List() (*volume.ListResponse, error) {
	out := &volume.ListResponse{Volumes: []*volume.Volume{}}
	for _, r := range d.ctrl.Volumes() {
		out.Volumes = append(out.Volumes, d.toVolume(r))
	}
	return out, nil
}

// Path returns the newest mount of a volume, empty when none.
func (d *Driver) Path(req *volume.PathRequest) (*volume.PathResponse, error) {
	defer region("Path").End()
	r, ok := d.ctrl.Volume(req.Name)
	if !ok {
		return nil, fmt.Errorf("no such volume: %s", req.Name)
	}
	return &volume.PathResponse{Mountpoint: fileOf(r, d.ctrl.MountPoint(req.Name))}, nil
}

// Mount builds the container's tmpfs; an error stops the container start.
func (d *Driver) Mount(req *volume.MountRequest) (*volume.MountResponse, error) {
	defer region("Mount").End()
	ctx, cancel := context.WithTimeout(context.Background(), mountTimeout)
	defer cancel()
	dir, err := d.ctrl.Mount(ctx, req.Name, req.ID)
	if err != nil {
		return nil, err
	}
	// A one-file volume's mount point is a file: the engine (measured on
	// 20.10) bind-mounts it over the container path, beside the image's
	// other files there. The bind holds that file's inode, so a rotation,
	// which links a new inode in place, reaches it at the next start.
	r, _ := d.ctrl.Volume(req.Name)
	return &volume.MountResponse{Mountpoint: fileOf(r, dir)}, nil
}

// Unmount wipes the container's tmpfs.
func (d *Driver) Unmount(req *volume.UnmountRequest) error {
	defer region("Unmount").End()
	return d.ctrl.Unmount(req.Name, req.ID)
}

// Capabilities says the volumes are local to this host.
func (d *Driver) Capabilities() *volume.CapabilitiesResponse {
	return &volume.CapabilitiesResponse{Capabilities: volume.Capability{Scope: "local"}}
}

// Listen opens the plugin socket dockerd discovers by name. A stale socket
// from a crashed daemon is replaced.
func Listen(pluginDir, name string) (net.Listener, error) {
	if name == "" || strings.ContainsAny(name, "/:") {
		return nil, fmt.Errorf("invalid driver name %q", name)
	}
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(pluginDir, name+".sock")
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	l, err := sockets.NewUnixSocket(path, 0)
	if err != nil {
		return nil, fmt.Errorf("plugin socket %s: %w", path, err)
	}
	return l, nil
}

// Serve answers the plugin protocol on l until l is closed.
func (d *Driver) Serve(l net.Listener) error {
	err := volume.NewHandler(d).Serve(l)
	if err != nil && errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
