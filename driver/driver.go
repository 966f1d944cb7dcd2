// Package driver adapts the controller to Docker's volume plugin protocol:
// dockerd calls Mount before a container's process starts and Unmount when
// it stops, on /run/docker/plugins/NAME.sock.
package driver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/go-connections/sockets"
	"github.com/docker/go-plugins-helpers/volume"

	"github.com/secretd/secretd/controller"
	"github.com/secretd/secretd/declaration"
)

// OptionSecrets is the one volume option: the declaration.
const OptionSecrets = "secrets"

// DefaultPluginDir is where dockerd looks for legacy plugin sockets.
const DefaultPluginDir = "/run/docker/plugins"

// mountTimeout bounds one Mount: dockerd waits on it with the container's
// start, so a stuck store must turn into an error, not a hang.
const mountTimeout = 30 * time.Second

// Driver is the secretd volume driver.
type Driver struct {
	ctrl    *controller.Controller
	volumes *volumes
	log     *slog.Logger
}

var _ volume.Driver = (*Driver)(nil)

// New loads the volume registry from stateFile.
func New(ctrl *controller.Controller, stateFile string, log *slog.Logger) (*Driver, error) {
	v, err := loadVolumes(stateFile)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Driver{ctrl: ctrl, volumes: v, log: log}, nil
}

// Declaration implements controller.Volumes.
func (d *Driver) Declaration(name string) string {
	r, _ := d.volumes.get(name)
	return r.Options[OptionSecrets]
}

// Create records a volume. Its declaration is checked for syntax now, so a
// typo fails `docker volume create`; the secrets themselves are looked up
// at Mount, because they may be created later.
func (d *Driver) Create(req *volume.CreateRequest) error {
	for k := range req.Options {
		if k != OptionSecrets && k != declaration.OptionFile {
			return fmt.Errorf("unknown option %q: the options are %s='NAME[;source=NAME,target=PATH,uid=N,gid=N,mode=0NNN]' and %s=TARGET", k, OptionSecrets, declaration.OptionFile)
		}
	}
	if decl, ok := req.Options[OptionSecrets]; ok {
		entries, err := declaration.Parse(decl)
		if err != nil {
			return err
		}
		if err := checkFileOption(entries, req.Options); err != nil {
			return err
		}
	} else if _, ok := req.Options[declaration.OptionFile]; ok {
		return fmt.Errorf("option %s needs a %s option with one entry whose target it names", declaration.OptionFile, OptionSecrets)
	}
	if old, ok := d.volumes.get(req.Name); ok {
		if old.Options[OptionSecrets] == req.Options[OptionSecrets] && old.Options[declaration.OptionFile] == req.Options[declaration.OptionFile] {
			return nil
		}
		return fmt.Errorf("volume %s already exists with other options", req.Name)
	}
	if err := d.put(volumeRecord{Name: req.Name, Options: req.Options, CreatedAt: time.Now().UTC()}); err != nil {
		return err
	}
	if req.Options[OptionSecrets] == "" {
		d.ctrl.VolumeBorn(req.Name)
	}
	return nil
}

// checkFileOption checks the file option of a one-file volume (an
// absolute target, bind-mounted over one path of the container): it names
// the target of the declaration's only entry, so no secret of the volume
// is hidden.
func checkFileOption(entries []declaration.Entry, opts map[string]string) error {
	file, ok := opts[declaration.OptionFile]
	if !ok {
		return nil
	}
	if len(entries) != 1 || entries[0].Target != file {
		return fmt.Errorf("option %s=%q must name the target of the only entry of %s", declaration.OptionFile, file, OptionSecrets)
	}
	return nil
}

// fileOf is the mount point of a volume below its tmpfs: the one file of
// a one-file volume, the tmpfs itself otherwise.
func fileOf(r volumeRecord, dir string) string {
	if f := r.Options[declaration.OptionFile]; f != "" && dir != "" {
		return filepath.Join(dir, filepath.FromSlash(f))
	}
	return dir
}

// put records a volume, logging rather than failing when only an
// option-less record could not be saved.
func (d *Driver) put(r volumeRecord) error {
	err := d.volumes.put(r)
	var notSaved errNotSaved
	if errors.As(err, &notSaved) {
		d.log.Warn("volume record not saved: kept in memory", "volume", r.Name, "err", notSaved.err)
		return nil
	}
	return err
}

// Remove forgets a volume; dockerd refuses to remove one in use.
func (d *Driver) Remove(req *volume.RemoveRequest) error {
	if err := d.volumes.remove(req.Name); err != nil {
		return err
	}
	d.ctrl.VolumeGone(req.Name)
	return nil
}

func (d *Driver) toVolume(r volumeRecord) *volume.Volume {
	v := &volume.Volume{Name: r.Name, Mountpoint: fileOf(r, d.ctrl.MountPoint(r.Name)), CreatedAt: r.CreatedAt.Format(time.RFC3339)}
	if decl := r.Options[OptionSecrets]; decl != "" {
		v.Status = map[string]interface{}{OptionSecrets: decl}
	}
	return v
}

// Get describes one volume.
func (d *Driver) Get(req *volume.GetRequest) (*volume.GetResponse, error) {
	// Before answering: a container created with this volume is only
	// announced (its create event) after this returns.
	d.ctrl.VolumeGot(req.Name)
	r, ok := d.volumes.get(req.Name)
	if !ok {
		return nil, fmt.Errorf("no such volume: %s", req.Name)
	}
	return &volume.GetResponse{Volume: d.toVolume(r)}, nil
}

// List describes every volume.
func (d *Driver) List() (*volume.ListResponse, error) {
	out := &volume.ListResponse{Volumes: []*volume.Volume{}}
	for _, r := range d.volumes.list() {
		out.Volumes = append(out.Volumes, d.toVolume(r))
	}
	return out, nil
}

// Path returns the newest mount of a volume, empty when none.
func (d *Driver) Path(req *volume.PathRequest) (*volume.PathResponse, error) {
	r, ok := d.volumes.get(req.Name)
	if !ok {
		return nil, fmt.Errorf("no such volume: %s", req.Name)
	}
	return &volume.PathResponse{Mountpoint: fileOf(r, d.ctrl.MountPoint(req.Name))}, nil
}

// Mount builds the container's tmpfs; an error stops the container start.
func (d *Driver) Mount(req *volume.MountRequest) (*volume.MountResponse, error) {
	r, ok := d.volumes.get(req.Name)
	if !ok {
		// dockerd created it before secretd's state was lost: remember it.
		if err := d.put(volumeRecord{Name: req.Name, CreatedAt: time.Now().UTC()}); err != nil {
			return nil, err
		}
	}
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
	return &volume.MountResponse{Mountpoint: fileOf(r, dir)}, nil
}

// Unmount wipes the container's tmpfs.
func (d *Driver) Unmount(req *volume.UnmountRequest) error {
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
