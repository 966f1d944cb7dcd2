// Package sourced runs driver secrets: it checks a new one against its
// driver, fetches values at Mount (serving the cache when the source
// fails), remembers where each secret's last Mount was served from, and
// keeps one refresher per secret created with --refresh.
package sourced

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/secretd/secretd/errdefs"
	"github.com/secretd/secretd/internal/audit"
	"github.com/secretd/secretd/internal/source"
	"github.com/secretd/secretd/internal/source/shell"
	"github.com/secretd/secretd/internal/store"
)

// MinRefresh is the shortest --refresh accepted: a poll runs a command or
// calls a plugin, and a rotation rewrites every container's files.
const MinRefresh = time.Second

// DefaultHost is the stamp of a Service given no Host: a host of a store
// of its own, where any stamp runs.
const DefaultHost = "local"

// syncEvery is how often the refreshers are matched to the store, for
// secrets created or removed by another host of a shared store.
const syncEvery = 30 * time.Second

// Metrics counts failures; metrics.Metrics implements it.
type Metrics interface {
	Error(op string, err error)
}

// Status is where the last Mount of a driver secret was served from.
type Status struct {
	// At is when that Mount fetched the value.
	At time.Time
	// Cached is true when the source failed and the cached value was served.
	Cached bool
	// Err is the source's failure when Cached is true.
	Err string
}

// Service is the daemon's driver-secret runtime. Set the fields, then call
// Run; Fetch and the create checks work before Run too.
type Service struct {
	// Store holds the secrets, their sealed options and cached values.
	Store *store.Store
	// Drivers resolves driver names.
	Drivers *source.Drivers
	// Log receives failures, never a value nor an option's value.
	Log *slog.Logger
	// Metrics counts failed fetches and polls; nil counts nothing.
	Metrics Metrics
	// Audit receives a secret.update for each refreshed version; nil keeps none.
	Audit *audit.Logger
	// Pins lists the versions containers pin, kept by a refresh's update; nil pins none.
	Pins func(ctx context.Context, sec store.Secret) ([]int, error)
	// Host is this host's ID: Authorize stamps it on the commands root
	// names here.
	Host string
	// TLSCommands lets TLS clients name commands, as root on the unix
	// socket may (--tls-secret-commands).
	TLSCommands bool

	mu         sync.Mutex
	status     map[string]Status
	refreshers map[string]*running
	parent     context.Context
}

type running struct {
	cancel context.CancelFunc
	r      *source.Refresher
	done   chan struct{}
}

// invalidError is a bad create: its text is the cause's, and errors.Is
// sees both errdefs.ErrInvalid (a 400) and the source's kind.
type invalidError struct{ err error }

func (e *invalidError) Error() string   { return e.err.Error() }
func (e *invalidError) Unwrap() []error { return []error{errdefs.ErrInvalid, e.err} }

func invalid(err error) error { return &invalidError{err: err} }

// Check refuses a driver secret that cannot work, before anything is
// stored: an unknown driver, options it refuses, a refresh interval out of
// range. The error never shows an option's value.
func (s *Service) Check(ctx context.Context, name string, spec store.SourceSpec) error {
	if spec.Refresh != 0 && spec.Refresh < MinRefresh {
		return invalid(fmt.Errorf("--refresh %s: the interval must be at least %s", spec.Refresh, MinRefresh))
	}
	if err := s.Drivers.Validate(ctx, name, spec.Driver, spec.Options); err != nil {
		return invalid(s.didYouMean(err, spec.Driver))
	}
	return nil
}

// Authorize decides whether who may create a secret with spec. A shell
// driver secret whose options name commands of their own (lookup, store,
// list, delete) makes secretd run them as root, at create and at every
// Mount: only root may name them, that is a peer of the unix socket with
// the daemon's own uid (0, or the rootless user), or a TLS client when
// TLSCommands is on. Anyone else gets ErrForbidden, before anything runs.
// An allowed spec comes back stamped with this host's ID (CommandsBy),
// which the shell driver checks at every run; any stamp the caller sent
// is dropped. Commands of the host's configuration file need no stamp.
func (s *Service) Authorize(spec store.SourceSpec, who *audit.Actor) (store.SourceSpec, error) {
	spec.CommandsBy = ""
	if spec.Driver != shell.Name || !shell.NamesCommands(spec.Options) {
		return spec, nil
	}
	switch {
	case who != nil && who.Cred && int64(who.UID) == int64(os.Geteuid()):
	case who != nil && who.CN != "" && s.TLSCommands:
	case who != nil && who.CN != "":
		return spec, errdefs.Errorf(errdefs.ErrForbidden, "a shell driver secret's own lookup, store, list or delete command runs as root, and this daemon takes none from TLS clients: use the commands of the host's %s (omit those --driver-opt), or have root start the daemon with --tls-secret-commands", shell.DefaultConfigPath)
	default:
		return spec, errdefs.Errorf(errdefs.ErrForbidden, "a shell driver secret's own lookup, store, list or delete command runs as root, so only root may name one: use the commands of the host's %s (omit those --driver-opt), or ask root to create the secret", shell.DefaultConfigPath)
	}
	spec.CommandsBy = cmp.Or(s.Host, DefaultHost)
	return spec, nil
}

// CheckStore refuses a value given at create for a driver that cannot keep
// it: a plugin, or a shell driver without store and delete commands. A
// driver that does not exist is refused as such.
func (s *Service) CheckStore(ctx context.Context, name string, spec store.SourceSpec) error {
	// A driver that does not exist is named as the cause first: whether it
	// could keep a value means nothing then. Options are Check's.
	if _, builtin := s.Drivers.Builtin[spec.Driver]; !builtin {
		if err := s.Drivers.Validate(ctx, name, spec.Driver, nil); err != nil {
			return invalid(s.didYouMean(err, spec.Driver))
		}
	}
	if err := s.Drivers.CheckStore(ctx, name, spec.Driver, spec.Options); err != nil {
		return invalid(err)
	}
	return nil
}

// StoreValue puts data, given at create, into a just-created secret's source
// (the shell driver's store command, with SECRET_ID). The caller wipes data.
func (s *Service) StoreValue(ctx context.Context, sec store.Secret, data []byte) error {
	req, err := s.request(sec, source.Container{})
	if err != nil {
		return err
	}
	if err := s.Drivers.Store(ctx, sec.Source.Driver, req, data); err != nil {
		return invalid(err)
	}
	return nil
}

// DeleteValue removes from its source the value of a secret whose value secretd
// stored there at create; other driver secrets are left alone, since their
// entry in the source is not secretd's.
func (s *Service) DeleteValue(ctx context.Context, sec store.Secret) error {
	if sec.Source == nil || !sec.Source.Stored {
		return nil
	}
	req, err := s.request(sec, source.Container{})
	if err != nil {
		return err
	}
	return s.Drivers.Delete(ctx, sec.Source.Driver, req)
}

// FetchesAtCreate says whether a new secret's value is fetched once when it
// is created: the shell driver's command is tried (a hang, a failure or an
// oversized output is refused then, not at the first container start), and
// a refreshed secret needs the value its refresher starts from.
func FetchesAtCreate(spec store.SourceSpec) bool {
	return spec.Driver == shell.Name || spec.Refresh > 0
}

// Prime fetches a just-created secret's value once. It keeps it as
// version 1 for a --cache or --refresh secret, and wipes it otherwise.
// On an error the caller removes the secret: nothing of it stays.
func (s *Service) Prime(ctx context.Context, sec store.Secret) (store.Secret, error) {
	v, err := s.fetch(ctx, sec, source.Container{})
	if err != nil {
		return sec, invalid(err)
	}
	defer v.Wipe()
	src := sec.Source
	if v.DoNotReuse && src.Refresh > 0 {
		return sec, invalid(fmt.Errorf("secret '%s': secret driver %q: %w", sec.Name, src.Driver, source.ErrDoNotReuse))
	}
	if v.DoNotReuse || !(src.Cache || src.Refresh > 0) {
		return sec, nil
	}
	return s.Store.SaveCache(sec.ID, v.Data)
}

// fetch asks the secret's source once, without the cache.
func (s *Service) fetch(ctx context.Context, sec store.Secret, who source.Container) (source.Value, error) {
	req, err := s.request(sec, who)
	if err != nil {
		return source.Value{}, err
	}
	return s.Drivers.Fetch(ctx, sec.Source.Driver, req)
}

// request is what sec's source is asked, with the options and the stamp
// of who named their commands as the store holds them now (authenticated
// by the record's MAC), not as the caller's copy of sec says.
func (s *Service) request(sec store.Secret, who source.Container) (source.Request, error) {
	opts, cur, err := s.Store.SourceOptions(sec.ID)
	if err != nil {
		return source.Request{}, err
	}
	req := source.Request{SecretID: sec.ID, SecretName: sec.Name, SecretLabels: sec.Labels, Options: opts, Container: who}
	if cur.Source != nil {
		req.CommandsBy = cur.Source.CommandsBy
	}
	return req, nil
}

// Fetch is a driver secret's value for a Mount: fetched for container who,
// or, when the source fails and the secret has --cache, the cached value,
// which the log and Status report. The caller wipes the value.
func (s *Service) Fetch(ctx context.Context, sec store.Secret, who source.Container) ([]byte, error) {
	if sec.Source == nil {
		return nil, errdefs.Errorf(errdefs.ErrInvalid, "secret '%s' has no driver", sec.Name)
	}
	req, err := s.request(sec, who)
	if err != nil {
		return nil, err
	}
	var c source.Cache
	if sec.Source.Cache {
		c = storeCache{s.Store}
	}
	res, err := source.FetchCached(ctx, s.Drivers, sec.Source.Driver, req, c)
	if err != nil {
		s.count(err)
		s.Log.Error("secret source failed at mount: the container does not start", "secret", sec.Name, "driver", sec.Source.Driver, "container", who.Name, "err", err)
		return nil, err
	}
	st := Status{At: time.Now().UTC(), Cached: res.Cached}
	if res.Cached {
		st.Err = res.SourceErr.Error()
		s.count(res.SourceErr)
		s.Log.Warn("secret source failed at mount: serving the cached value", "secret", sec.Name, "driver", sec.Source.Driver, "container", who.Name, "err", res.SourceErr)
	}
	if res.SaveErr != nil {
		s.Log.Warn("secret cache not updated", "secret", sec.Name, "err", res.SaveErr)
	}
	s.mu.Lock()
	if s.status == nil {
		s.status = map[string]Status{}
	}
	s.status[sec.ID] = st
	s.mu.Unlock()
	return res.Value.Data, nil
}

func (s *Service) count(err error) {
	if s.Metrics != nil {
		s.Metrics.Error("source", err)
	}
}

// LastMount is where the last Mount of secret id was served from, if any
// Mount fetched it since the daemon started.
func (s *Service) LastMount(id string) (Status, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.status[id]
	return st, ok
}

// storeCache is the cache of a --cache secret: its newest stored version.
type storeCache struct{ st *store.Store }

func (c storeCache) Load(_ context.Context, id string) ([]byte, error) {
	data, _, err := c.st.Reveal(id, 0)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil, fmt.Errorf("%w: %w", source.ErrNotCached, err)
	}
	return data, err
}

func (c storeCache) Save(_ context.Context, id string, data []byte) error {
	_, err := c.st.SaveCache(id, data)
	return err
}
