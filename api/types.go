// Package api holds the wire types of secretd's HTTP API. The secret
// endpoints are shaped like the Docker Engine API's, so the stock docker CLI
// works against secretd's socket; the rest live under /secretd/.
package api

import (
	"fmt"
	"strings"
	"time"

	"github.com/docker/docker/api/types/swarm"
)

// APIVersion is the Docker Engine API version secretd advertises: Engine
// 29.7's. The secret endpoints last changed in 1.37 (Templating), and
// secretd serves them exactly up to here; the Go client of docker CLI
// 29.0-29.2 refuses any server below 1.44.
const APIVersion = "1.55"

// MinAPIVersion is the oldest client API version secretd answers, as
// Engines from 25.0 on say it.
const MinAPIVersion = "1.24"

// MaxBodyBytes caps request bodies: a 500 KiB secret is about 683 KiB of
// base64, so 1 MiB leaves room for JSON and labels and no more.
const MaxBodyBytes = 1 << 20

// MaxConfigBodyBytes caps the bodies that carry a config's data: a config
// of just under 1000 KiB is about 1.3 MiB of base64.
const MaxConfigBodyBytes = 3 << 19

// Secret is a secret as the API shows it: Docker's swarm.Secret, which the
// stock CLI decodes, plus the versions secretd keeps. Data is never set.
type Secret struct {
	swarm.Secret
	// CurrentVersion is the version containers get unless they pin one.
	CurrentVersion int `json:",omitempty"`
	// Versions lists the kept versions, oldest first.
	Versions []SecretVersion `json:",omitempty"`
	// Source is set for a secret created with a driver.
	Source *SecretSource `json:",omitempty"`
	// Rotation is set in the answer to secretd's update (POST
	// /secretd/secrets/{ref}/update): what the new version did to the
	// containers that use it on this host.
	Rotation *Rotation `json:",omitempty"`
}

// Rotation is what one new version of a secret or config did on this
// host: how many mounts it rewrote in place, and each container that did
// not get it in place, with what that container gets and why. Docker's
// own update path changes labels only and has no rotation to report.
type Rotation struct {
	// Version is the version rotated to.
	Version int
	// Updated counts the mounts rewritten in place.
	Updated int
	// Containers are those that did not get Version in place, sorted by
	// name.
	Containers []ContainerRotation `json:",omitempty"`
}

// What a container listed in a Rotation gets (ContainerRotation.Gets).
const (
	// RotationNextStart: the new version, from the container's next start.
	RotationNextStart = "next-start"
	// RotationRestarting: the new version, once the restart its
	// on-update asked for is done.
	RotationRestarting = "restarting"
	// RotationKept: the previous version; the rotation failed there.
	RotationKept = "kept"
)

// ContainerRotation is one container a rotation did not update in place.
type ContainerRotation struct {
	ContainerID string `json:",omitempty"`
	// ContainerName names the container, or says which volume it mounts
	// while its start is under way and its name not known yet.
	ContainerName string
	// Targets are where the container reads the secret or config: the
	// full path of a file bound at an absolute target.
	Targets []string `json:",omitempty"`
	// Gets is RotationNextStart, RotationRestarting or RotationKept.
	Gets string
	// Reason says why, and what to do.
	Reason string
}

// Notice says on one line what the container gets of version of what (as
// "secret 'db'"), and why.
func (c ContainerRotation) Notice(what string, version int) string {
	switch c.Gets {
	case RotationRestarting:
		return fmt.Sprintf("%s gets version %d of %s once restarted: %s", c.ContainerName, version, what, c.Reason)
	case RotationKept:
		return fmt.Sprintf("%s keeps the previous version of %s: %s", c.ContainerName, what, c.Reason)
	default:
		return fmt.Sprintf("%s gets version %d of %s at its next start: %s", c.ContainerName, version, what, c.Reason)
	}
}

// Config is a config as the API shows it: Docker's swarm.Config, whose
// Spec.Data holds the data as Swarm shows it (a template's text for a
// template), plus the versions secretd keeps.
type Config struct {
	swarm.Config
	// CurrentVersion is the version containers get unless they pin one.
	CurrentVersion int `json:",omitempty"`
	// Versions lists the kept versions, oldest first (inspect only).
	Versions []SecretVersion `json:",omitempty"`
	// Rotation is set in the answer to secretd's update, as for a secret.
	Rotation *Rotation `json:",omitempty"`
}

// ConfigUpdateRequest carries a new version of a config's data; Swarm
// refuses data in an update, secretd rotates it in place.
type ConfigUpdateRequest = SecretUpdateRequest

// SecretSource says where a driver secret's value comes from. It names the
// driver's options, never their values, which may hold credentials.
type SecretSource struct {
	Driver string
	// OptionKeys are the names of the --driver-opt options given.
	OptionKeys []string `json:",omitempty"`
	// Cache keeps the last value fetched, served when the source fails.
	Cache bool `json:",omitempty"`
	// Refresh is how often the source is polled (a Go duration); empty when never.
	Refresh string `json:",omitempty"`
	// LastMount says where the last Mount since the daemon started got the value.
	LastMount *SourceMount `json:",omitempty"`
}

// SourceMount is where one Mount got a driver secret's value.
type SourceMount struct {
	At time.Time
	// Cached is true when the source failed and the cached value was served (stale).
	Cached bool `json:",omitempty"`
	// Error is the source's failure when Cached is true.
	Error string `json:",omitempty"`
}

// SecretCreateRequest is the body of POST /secrets/create: Docker's
// SecretSpec, which the stock CLI sends (Driver set by --driver), plus the
// source settings only secretd's CLI sends.
type SecretCreateRequest struct {
	swarm.SecretSpec
	// Cache keeps a driver secret's last value as an encrypted version.
	Cache bool `json:",omitempty"`
	// Refresh is how often to poll the driver (a Go duration).
	Refresh string `json:",omitempty"`
}

// SecretTable is a list of secrets (or configs) by column, what `secretd
// secret ls` asks for (GET /secretd/secrets, with the filters of GET
// /secrets; GET /secretd/configs for configs): at
// 10,000 secrets it measured 0.84 MB against the Docker-shaped list's
// 2.2 MB, and decoded about three times faster. Row i of every column is
// one secret.
type SecretTable struct {
	IDs             []string
	Names           []string
	CurrentVersions []int
	// CreatedAt and UpdatedAt are Unix times in nanoseconds.
	CreatedAt []int64
	UpdatedAt []int64
	// Labels holds the labels of the secrets that have any, by ID.
	Labels map[string]map[string]string `json:",omitempty"`
	// Drivers describes the driver secrets' sources, by ID (see SecretSource.Describe).
	Drivers map[string]string `json:",omitempty"`
	// Templates names the template driver of the templated ones, by ID.
	Templates map[string]string `json:",omitempty"`
}

// SetTemplate records the template driver of the secret or config id.
func (t *SecretTable) SetTemplate(id, driver string) {
	if driver == "" {
		return
	}
	if t.Templates == nil {
		t.Templates = map[string]string{}
	}
	t.Templates[id] = driver
}

// Describe is a source on one line, for `secret ls`: the driver, its
// option keys, and "[cached]" when the last Mount was served from the cache.
func (s *SecretSource) Describe() string {
	out := s.Driver
	if len(s.OptionKeys) > 0 {
		out += " (" + strings.Join(s.OptionKeys, ", ") + ")"
	}
	if s.LastMount != nil && s.LastMount.Cached {
		out += " [cached]"
	}
	return out
}

// SetDriver records the source of the secret id.
func (t *SecretTable) SetDriver(id string, s *SecretSource) {
	if s == nil {
		return
	}
	if t.Drivers == nil {
		t.Drivers = map[string]string{}
	}
	t.Drivers[id] = s.Describe()
}

// NewSecretTable is secrets by column.
func NewSecretTable(secrets []Secret) SecretTable {
	t := MakeSecretTable(len(secrets))
	for _, s := range secrets {
		t.Append(s.ID, s.Spec.Name, s.CurrentVersion, s.CreatedAt, s.UpdatedAt, s.Spec.Labels)
		t.SetDriver(s.ID, s.Source)
		if s.Spec.Templating != nil {
			t.SetTemplate(s.ID, s.Spec.Templating.Name)
		}
	}
	return t
}

// NewConfigTable is configs by column.
func NewConfigTable(configs []Config) SecretTable {
	t := MakeSecretTable(len(configs))
	for _, c := range configs {
		t.Append(c.ID, c.Spec.Name, c.CurrentVersion, c.CreatedAt, c.UpdatedAt, c.Spec.Labels)
		if c.Spec.Templating != nil {
			t.SetTemplate(c.ID, c.Spec.Templating.Name)
		}
	}
	return t
}

// MakeSecretTable returns an empty table with room for n rows.
func MakeSecretTable(n int) SecretTable {
	return SecretTable{
		IDs: make([]string, 0, n), Names: make([]string, 0, n), CurrentVersions: make([]int, 0, n),
		CreatedAt: make([]int64, 0, n), UpdatedAt: make([]int64, 0, n),
	}
}

// Append adds one secret as the last row.
func (t *SecretTable) Append(id, name string, current int, created, updated time.Time, labels map[string]string) {
	t.IDs, t.Names, t.CurrentVersions = append(t.IDs, id), append(t.Names, name), append(t.CurrentVersions, current)
	t.CreatedAt, t.UpdatedAt = append(t.CreatedAt, unixNano(created)), append(t.UpdatedAt, unixNano(updated))
	if len(labels) > 0 {
		if t.Labels == nil {
			t.Labels = map[string]map[string]string{}
		}
		t.Labels[id] = labels
	}
}

// unixNano keeps the zero time 0, as the table's readers expect.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// SecretVersion is one kept version of a secret's data.
type SecretVersion struct {
	Version   int
	CreatedAt time.Time
}

// SecretUpdateRequest carries a new version of a secret's data. Swarm
// refuses data in an update; secretd's rotation is exactly that.
type SecretUpdateRequest struct {
	Data []byte
	// Keep is how many versions to keep; 0 means the daemon's default.
	Keep int `json:",omitempty"`
	// IfChanged stores the version only when Data differs from the
	// current one, so that re-importing an unchanged file (secretd compose
	// up) does not rotate every container using it.
	IfChanged bool `json:",omitempty"`
}

// ContainerUpdateRequest grants and revokes secrets and configs of one
// container live, as `docker service update --secret-add/--secret-rm
// --config-add/--config-rm` does for a service.
type ContainerUpdateRequest struct {
	// SecretAdd are declaration entries (NAME or source=NAME,target=...).
	SecretAdd []string `json:",omitempty"`
	// SecretRm are secret names.
	SecretRm []string `json:",omitempty"`
	// ConfigAdd are declaration entries of configs, in the same syntax.
	ConfigAdd []string `json:",omitempty"`
	// ConfigRm are config names.
	ConfigRm []string `json:",omitempty"`
	// Volume names the container's volume to change; empty means the
	// volumes that hold each revoked secret, and the one at /run/secrets
	// for grants.
	Volume string `json:",omitempty"`
	// Shared allows changing a volume other containers use too.
	Shared bool `json:",omitempty"`
}

// UnlockRequest carries the unlock key in the body, never in a URL.
type UnlockRequest struct {
	UnlockKey string
}

// UnlockKeyResponse carries the current or new unlock key.
type UnlockKeyResponse struct {
	UnlockKey string
}

// KeyRotateResponse reports the KEK generation now in use.
type KeyRotateResponse struct {
	Generation int
}

// Task is one container's claim on secrets, from the controller's table.
type Task struct {
	ContainerID   string
	ContainerName string
	// Volume is the name of the secretd volume mounted (empty from a
	// daemon that predates it).
	Volume  string `json:",omitempty"`
	MountID string
	Mount   string
	Since   time.Time
	Secrets []TaskSecret
}

// TaskSecret is one secret (or config) mounted into a container.
type TaskSecret struct {
	// Kind is "config" for a config; empty for a secret.
	Kind    string `json:",omitempty"`
	ID      string
	Name    string
	Version int
	Pinned  bool `json:",omitempty"`
	Target  string
	// Template is set for a rendered template: the secrets and configs
	// it read, as KIND:NAME@VERSION.
	Reads []string `json:",omitempty"`
}

// Status is the daemon's state, for `secretd status`.
type Status struct {
	Version     string
	Locked      bool
	Autolock    bool
	Store       string
	Engine      string
	EngineError string `json:",omitempty"`
	Secrets     int
	Configs     int `json:",omitempty"`
	Mounts      int
	// SpareMounts counts the empty mounts made ahead of time that no
	// container holds yet; Mounts does not include them.
	SpareMounts int
	// Goroutines and OpenFDs are the daemon process's, so a test or an
	// operator can check they come back to a baseline after load.
	Goroutines int
	OpenFDs    int
	// MountsServed counts Mount calls answered since start; MountP50 and
	// MountP99 are the Mount handler's own timing over recent calls.
	MountsServed uint64
	MountP50     time.Duration
	MountP99     time.Duration
	Resyncs      uint64
	// Rotations counts mounts rewritten in place by secret updates.
	Rotations uint64
	// EventsHandled counts engine events handled since start; EventLagP50
	// and EventLagP99 are, over recent events, the time from the engine
	// stamping an event to secretd having handled it: how far behind the
	// engine the task table runs.
	EventsHandled uint64
	EventLagP50   time.Duration
	EventLagP99   time.Duration
	// Noswap reports whether secretd's tmpfs mounts are made with noswap
	// (Linux 6.4+), so their pages are never written to swap.
	Noswap bool
	// SwapOn reports whether the host has an active swap area
	// (/proc/swaps): without Noswap, secrets may then reach the swap device.
	SwapOn bool
	// NoswapError is why the probe for noswap could not run: mounts then
	// go without it, whatever the kernel supports.
	NoswapError string `json:",omitempty"`
	// VolumeDriver is the volume driver the daemon serves (its
	// --driver-name), the name containers give as volume-driver=. Empty
	// from a daemon that predates it.
	VolumeDriver string `json:",omitempty"`
}

// ErrorResponse is the Docker Engine's error body.
type ErrorResponse struct {
	Message string `json:"message"`
}
