// Package audit writes secretd's audit trail: one JSON object per line for
// every change to a secret, every delivery into or removal from a
// container, and every refusal, saying who, what and when. An Event has no
// field that could hold secret data, so the trail cannot leak a value by
// mistake.
package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Event names, stable: tools that read the trail match on them.
const (
	// SecretCreate is a new secret.
	SecretCreate = "secret.create"
	// SecretCreateFailed is a driver secret's create that ran its source
	// (the shell driver's store or lookup command, a plugin) and failed:
	// nothing was kept; Reason says why.
	SecretCreateFailed = "secret.create.failed"
	// SecretUpdate is a new version of a secret's data.
	SecretUpdate = "secret.update"
	// SecretLabels is a secret's labels replaced (Swarm's secret update).
	SecretLabels = "secret.labels"
	// SecretRemove is a secret removed with all its versions.
	SecretRemove = "secret.remove"
	// SecretVersionRemove is one kept version removed.
	SecretVersionRemove = "secret.version.remove"
	// ConfigCreate is a new config.
	ConfigCreate = "config.create"
	// ConfigUpdate is a new version of a config's data.
	ConfigUpdate = "config.update"
	// ConfigLabels is a config's labels replaced (Swarm's config update).
	ConfigLabels = "config.labels"
	// ConfigRemove is a config removed with all its versions.
	ConfigRemove = "config.remove"
	// ConfigVersionRemove is one kept version of a config removed.
	ConfigVersionRemove = "config.version.remove"
	// ContainerMount is secrets delivered into a container's tmpfs.
	ContainerMount = "container.mount"
	// ContainerWipe is a container's tmpfs zeroed and unmounted.
	ContainerWipe = "container.wipe"
	// ContainerRotate is a new version pushed into one running container.
	ContainerRotate = "container.rotate"
	// ContainerRotateFailed is a new version that did not reach one running
	// container, which keeps the version it had; Reason says why.
	ContainerRotateFailed = "container.rotate.failed"
	// ContainerUpdate is a live grant or revoke on one container.
	ContainerUpdate = "container.update"
	// StoreUnlock is an autolocked store unlocked.
	StoreUnlock = "store.unlock"
	// KeyRotate is a new key-encryption key.
	KeyRotate = "key.rotate"
	// UnlockKeyRead is the unlock key shown to a caller.
	UnlockKeyRead = "unlock_key.read"
	// UnlockKeyRotate is a new unlock key.
	UnlockKeyRotate = "unlock_key.rotate"
	// Denied is a refused request; Action names what was refused.
	Denied = "denied"
)

// Actor is who asked: the peer of a unix socket (from SO_PEERCRED) or the
// subject of a TLS client certificate. The zero Actor is the daemon itself.
type Actor struct {
	// Cred is set for a unix socket peer, whose IDs follow.
	Cred bool
	// UID is the peer's user ID.
	UID uint32
	// GID is the peer's group ID.
	GID uint32
	// PID is the peer's process ID.
	PID int32
	// CN is the common name of a verified TLS client certificate.
	CN string
}

// MarshalJSON writes only what is known, keeping uid 0 (root), which
// omitempty would drop.
func (a Actor) MarshalJSON() ([]byte, error) {
	switch {
	case a.CN != "":
		return json.Marshal(struct {
			CN string `json:"cn"`
		}{a.CN})
	case a.Cred:
		return json.Marshal(struct {
			UID uint32 `json:"uid"`
			GID uint32 `json:"gid"`
			PID int32  `json:"pid"`
		}{a.UID, a.GID, a.PID})
	}
	return []byte(`{}`), nil
}

// String describes the actor for log lines.
func (a Actor) String() string {
	switch {
	case a.CN != "":
		return "cn=" + a.CN
	case a.Cred:
		return fmt.Sprintf("uid=%d gid=%d pid=%d", a.UID, a.GID, a.PID)
	}
	return "secretd"
}

// SecretRef names one secret (or config) version delivered to a container.
type SecretRef struct {
	// Kind is "config" for a config, empty for a secret.
	Kind    string `json:"kind,omitempty"`
	Name    string `json:"name"`
	Version int    `json:"version,omitempty"`
	Target  string `json:"target,omitempty"`
}

// Event is one line of the trail. It carries names, IDs, versions and
// reasons, and by design no field for data.
type Event struct {
	Time  time.Time `json:"time"`
	Event string    `json:"event"`
	// Action is what a Denied event refused (an event name).
	Action string `json:"action,omitempty"`
	Actor  *Actor `json:"actor,omitempty"`
	// Secret is a secret's name, or the reference a request gave.
	Secret   string `json:"secret,omitempty"`
	SecretID string `json:"secret_id,omitempty"`
	// Config is a config's name, or the reference a request gave.
	Config      string `json:"config,omitempty"`
	ConfigID    string `json:"config_id,omitempty"`
	Version     int    `json:"version,omitempty"`
	Container   string `json:"container,omitempty"`
	ContainerID string `json:"container_id,omitempty"`
	// Volume is the secretd volume a Mount was for.
	Volume string `json:"volume,omitempty"`
	// Mount is the host path of a container's tmpfs.
	Mount   string      `json:"mount,omitempty"`
	Secrets []SecretRef `json:"secrets,omitempty"`
	// Added and Removed are the declaration entries and names of a live
	// grant or revoke.
	Added   []string `json:"added,omitempty"`
	Removed []string `json:"removed,omitempty"`
	// Generation is the key-encryption key generation after a rotation.
	Generation int `json:"generation,omitempty"`
	// Reason is the error a refusal or failure answered with.
	Reason string `json:"reason,omitempty"`
}

// Logger appends events to the trail. A nil *Logger discards them, so
// callers need no "audit off" branch. It is safe for concurrent use.
type Logger struct {
	mu    sync.Mutex
	w     io.Writer
	c     io.Closer
	now   func() time.Time
	onErr func(error)
	// failed keeps a broken trail from flooding the log with one error per
	// event.
	failed bool
}

// The --audit-log values that are not file paths.
const (
	// Off disables the trail.
	Off = "off"
	// Stdout sends the trail to standard output.
	Stdout = "-"
)

// Open opens the trail that --audit-log names: Off gives nil, Stdout
// writes to stdout, "" means DATA-ROOT/audit.log, anything else is a file
// path. A file is created with mode 0600 and opened O_APPEND, so lines
// from concurrent writers never interleave and earlier lines are never
// overwritten. onErr, when set, hears of failed writes.
func Open(spec, dataRoot string, stdout io.Writer, onErr func(error)) (*Logger, error) {
	switch spec {
	case Off:
		return nil, nil
	case Stdout:
		return New(stdout, onErr), nil
	case "":
		spec = filepath.Join(dataRoot, "audit.log")
	}
	if err := os.MkdirAll(filepath.Dir(spec), 0o700); err != nil {
		return nil, fmt.Errorf("--audit-log: %w", err)
	}
	f, err := os.OpenFile(spec, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("--audit-log: %w", err)
	}
	// A trail that already existed keeps who may read it to root: it names
	// every secret and who asked for it.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, fmt.Errorf("--audit-log: %w", err)
	}
	l := New(f, onErr)
	l.c = f
	return l, nil
}

// New returns a Logger writing to w.
func New(w io.Writer, onErr func(error)) *Logger {
	return &Logger{w: w, now: time.Now, onErr: onErr}
}

// Log appends e, stamped with the current time when e.Time is zero.
func (l *Logger) Log(e Event) {
	if l == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = l.now().UTC()
	}
	e.clip()
	line, err := json.Marshal(e)
	if err != nil {
		l.fail(err)
		return
	}
	line = append(line, '\n')
	l.mu.Lock()
	// One write per line: with O_APPEND the kernel places it whole.
	_, err = l.w.Write(line)
	if err == nil {
		l.failed = false
	}
	l.mu.Unlock()
	if err != nil {
		l.fail(err)
	}
}

func (l *Logger) fail(err error) {
	l.mu.Lock()
	report := !l.failed
	l.failed = true
	l.mu.Unlock()
	if report && l.onErr != nil {
		l.onErr(fmt.Errorf("audit trail: %w", err))
	}
}

// Deny records a refused request: action is the event it would have been,
// err the reason given to the caller.
func (l *Logger) Deny(action string, who *Actor, e Event, err error) {
	if l == nil {
		return
	}
	e.Event, e.Action, e.Actor = Denied, action, who
	if err != nil {
		e.Reason = strings.TrimSpace(err.Error())
	}
	l.Log(e)
}

// Bounds on what one line quotes of what a request or a label gave: a line
// stays readable and a hostile declaration cannot fill the disk through it.
const (
	maxField  = 256
	maxReason = 1024
	maxList   = 64
)

// clip bounds every free-text field of e.
func (e *Event) clip() {
	for _, f := range []*string{&e.Action, &e.Secret, &e.SecretID, &e.Container, &e.ContainerID, &e.Volume, &e.Mount} {
		*f = clipText(*f, maxField)
	}
	e.Reason = clipText(e.Reason, maxReason)
	e.Added, e.Removed = clipList(e.Added), clipList(e.Removed)
	if len(e.Secrets) > maxList {
		e.Secrets = append(e.Secrets[:maxList:maxList], SecretRef{Name: fmt.Sprintf("...(%d more)", len(e.Secrets)-maxList)})
	} else {
		e.Secrets = slices.Clone(e.Secrets) // the caller's stays as it was
	}
	for i := range e.Secrets {
		e.Secrets[i].Name = clipText(e.Secrets[i].Name, maxField)
		e.Secrets[i].Target = clipText(e.Secrets[i].Target, maxField)
	}
}

func clipList(l []string) []string {
	if len(l) > maxList {
		l = append(l[:maxList:maxList], fmt.Sprintf("...(%d more)", len(l)-maxList))
	} else {
		l = slices.Clone(l)
	}
	for i := range l {
		l[i] = clipText(l[i], maxField)
	}
	return l
}

// clipText cuts s to n bytes on a rune boundary, saying how long it was.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("...(%d bytes)", len(s))
}

// Close closes the trail's file, if it has one.
func (l *Logger) Close() error {
	if l == nil || l.c == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.c.Close()
}
