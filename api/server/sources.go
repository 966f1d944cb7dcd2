package server

import (
	"context"
	"time"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/errdefs"
	"github.com/secretd/secretd/internal/audit"
	"github.com/secretd/secretd/internal/sourced"
	"github.com/secretd/secretd/internal/store"
)

// Sources is the driver-secret runtime the API checks new driver secrets
// with; *sourced.Service implements it.
type Sources interface {
	// Authorize refuses a spec who may not create (a command named by
	// someone other than root) and stamps an allowed one.
	Authorize(spec store.SourceSpec, who *audit.Actor) (store.SourceSpec, error)
	// Check refuses a driver, options or refresh interval that cannot work.
	Check(ctx context.Context, name string, spec store.SourceSpec) error
	// Prime fetches a new secret's value once, keeping it when it is cached.
	Prime(ctx context.Context, sec store.Secret) (store.Secret, error)
	// CheckStore refuses a value given at create for a driver that cannot keep it.
	CheckStore(ctx context.Context, name string, spec store.SourceSpec) error
	// StoreValue puts a value given at create into the new secret's source.
	StoreValue(ctx context.Context, sec store.Secret, data []byte) error
	// DeleteValue removes a secret's value from its source when secretd stored it there.
	DeleteValue(ctx context.Context, sec store.Secret) error
	// LastMount is where the secret's last Mount got its value.
	LastMount(id string) (sourced.Status, bool)
	// Sync starts and stops refreshers to match the store.
	Sync()
}

// sourceSpec reads and checks the driver part of a create: nil for a
// stored secret. Every refusal happens before anything is stored or run.
func (s *Server) sourceSpec(ctx context.Context, req api.SecretCreateRequest, who *audit.Actor) (*store.SourceSpec, error) {
	spec := req.SecretSpec
	if spec.Driver == nil {
		switch {
		case req.Refresh != "":
			return nil, errdefs.Errorf(errdefs.ErrInvalid, "--refresh polls a secret's driver: give --driver too")
		case req.Cache:
			return nil, errdefs.Errorf(errdefs.ErrInvalid, "--cache keeps the value a secret's driver gives: give --driver too")
		}
		return nil, nil
	}
	if s.cfg.Sources == nil {
		return nil, errdefs.Errorf(errdefs.ErrInvalid, "this secretd runs without secret drivers: omit --driver")
	}
	// Validated before the source is asked anything: a bad name never
	// reaches a plugin.
	if err := store.ValidateName(spec.Name); err != nil {
		return nil, err
	}
	if err := store.ValidateLabels(spec.Labels); err != nil {
		return nil, err
	}
	src := &store.SourceSpec{Driver: spec.Driver.Name, Options: spec.Driver.Options, Cache: req.Cache}
	if req.Refresh != "" {
		d, err := time.ParseDuration(req.Refresh)
		if err != nil || d <= 0 {
			return nil, errdefs.Errorf(errdefs.ErrInvalid, "invalid --refresh %q: give a duration such as 30s or 5m", req.Refresh)
		}
		src.Refresh = d
	}
	authorized, err := s.cfg.Sources.Authorize(*src, who)
	if err != nil {
		return nil, err
	}
	src = &authorized
	if len(spec.Data) > 0 {
		// Podman's shell driver: the value goes to the source through its
		// store command, and is read back through lookup.
		src.Stored = true
		if err := s.cfg.Sources.CheckStore(ctx, spec.Name, *src); err != nil {
			return nil, err
		}
	}
	if err := s.cfg.Sources.Check(ctx, spec.Name, *src); err != nil {
		return nil, err
	}
	return src, nil
}

// primeSource puts a value given at create into a new driver secret's
// source, then fetches the value once when its driver calls for it (a
// stored value is read back through the lookup). A failure removes the
// secret again, and the value from the source, so a refused create leaves
// nothing behind.
func (s *Server) primeSource(ctx context.Context, sec store.Secret, data []byte) (store.Secret, error) {
	undo := func(err error) (store.Secret, error) {
		if _, rerr := s.cfg.Store.Remove(sec.ID, nil); rerr != nil {
			s.cfg.Log.Error("refused driver secret not removed", "secret", sec.Name, "id", sec.ID, "err", rerr)
		}
		return store.Secret{}, err
	}
	if sec.Source.Stored {
		if err := s.cfg.Sources.StoreValue(ctx, sec, data); err != nil {
			return undo(err)
		}
	}
	if sec.Source.Stored || sourced.FetchesAtCreate(store.SourceSpec{Driver: sec.Source.Driver, Refresh: sec.Source.Refresh}) {
		primed, err := s.cfg.Sources.Prime(ctx, sec)
		if err != nil {
			if derr := s.cfg.Sources.DeleteValue(ctx, sec); derr != nil {
				s.cfg.Log.Error("refused driver secret's value not deleted from its source", "secret", sec.Name, "id", sec.ID, "err", derr)
			}
			return undo(err)
		}
		sec = primed
	}
	if sec.Source.Refresh > 0 {
		s.cfg.Sources.Sync()
	}
	return sec, nil
}
