package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/swarm"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/errdefs"
	"github.com/secretd/secretd/internal/audit"
	"github.com/secretd/secretd/internal/store"
)

// The config endpoints are the Docker Engine's, so `docker config` and the
// Docker Go client work unchanged, and configs are kept as secrets are (the
// store's config view): versions, pins, rotation in place. Unlike a
// secret's, a config's data is shown, by inspect and by the Docker-shaped
// list, as Swarm shows it.

// toAPIConfig converts store metadata, and the current data when given, to
// the Docker shape.
func toAPIConfig(c store.Secret, data []byte) api.Config {
	out := api.Config{
		Config: swarm.Config{
			ID: c.ID,
			Meta: swarm.Meta{
				Version:   swarm.Version{Index: c.Index},
				CreatedAt: c.CreatedAt,
				UpdatedAt: c.UpdatedAt,
			},
			Spec: swarm.ConfigSpec{Annotations: swarm.Annotations{Name: c.Name, Labels: c.Labels}, Data: data},
		},
		CurrentVersion: c.Current,
	}
	if out.Spec.Labels == nil {
		out.Spec.Labels = map[string]string{}
	}
	if c.Template != "" {
		out.Spec.Templating = &swarm.Driver{Name: c.Template}
	}
	for _, v := range c.Versions {
		out.Versions = append(out.Versions, api.SecretVersion{Version: v.Version, CreatedAt: v.CreatedAt})
	}
	return out
}

func (s *Server) configs() *store.Store { return s.cfg.Store.Configs() }

// withData is toAPIConfig with the current data, decrypted.
func (s *Server) withData(c store.Secret) (api.Config, error) {
	data, cur, err := s.configs().Reveal(c.ID, 0)
	if err != nil {
		return api.Config{}, err
	}
	return toAPIConfig(cur, data), nil
}

// configList is Docker's GET /configs: every config with its data, as
// Swarm lists them.
func (s *Server) configList(w http.ResponseWriter, r *http.Request) {
	list, ok := s.listedConfigs(w, r)
	if !ok {
		return
	}
	out := make([]api.Config, 0, len(list))
	for _, c := range list {
		a, err := s.withData(c)
		if errors.Is(err, errdefs.ErrNotFound) {
			continue // removed since it was listed
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		a.Versions = nil // inspect's, as for secrets
		out = append(out, a)
	}
	writeJSON(w, http.StatusOK, out)
}

// configTable is configList by column without the data, for `secretd
// config ls`: it works while the store is locked.
func (s *Server) configTable(w http.ResponseWriter, r *http.Request) {
	list, ok := s.listedConfigs(w, r)
	if !ok {
		return
	}
	t := api.MakeSecretTable(len(list))
	for _, c := range list {
		t.Append(c.ID, c.Name, c.Current, c.CreatedAt, c.UpdatedAt, c.Labels)
		t.SetTemplate(c.ID, c.Template)
	}
	writeJSON(w, http.StatusOK, t)
}

func (s *Server) listedConfigs(w http.ResponseWriter, r *http.Request) ([]store.Secret, bool) {
	f, err := listFilters(r)
	if err != nil {
		s.fail(w, r, err)
		return nil, false
	}
	list, err := s.configs().List(f)
	if err != nil {
		s.fail(w, r, err)
		return nil, false
	}
	return list, true
}

func (s *Server) configCreate(w http.ResponseWriter, r *http.Request) {
	var spec swarm.ConfigSpec
	if !decode(w, r, &spec) {
		return
	}
	r.SetPathValue("ref", spec.Name) // names the config in a refusal's audit line
	tpl, err := templateDriver(store.KindConfig, spec.Templating, spec.Data)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	c, err := s.configs().Create(store.Spec{Name: spec.Name, Labels: spec.Labels, Data: spec.Data, Template: tpl})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.cfg.Log.Info("config created", "config", c.Name, "id", c.ID, "version", c.Current)
	s.audit(r, audit.Event{Event: audit.ConfigCreate, Config: c.Name, ConfigID: c.ID, Version: c.Current})
	writeJSON(w, http.StatusCreated, swarm.ConfigCreateResponse{ID: c.ID})
}

func (s *Server) configInspect(w http.ResponseWriter, r *http.Request) {
	c, err := s.configs().Get(r.PathValue("ref"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	a, err := s.withData(c)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

// configRemove is Docker's DELETE /configs/{id}, refused while a container
// uses the config; NAME@V removes one kept version, as for secrets.
func (s *Server) configRemove(w http.ResponseWriter, r *http.Request) {
	ref := r.PathValue("ref")
	if name, v, ok := strings.Cut(ref, "@"); ok {
		version, err := strconv.Atoi(v)
		if err != nil || version < 1 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid version %q in %q: use NAME@N with N a positive number", v, ref))
			return
		}
		c, err := s.checked(r.Context(), s.configs(), name,
			func(ctx context.Context, c store.Secret) error { return s.notPinned(ctx, c, version) },
			func(guard func(store.Secret) error) (store.Secret, error) {
				return s.configs().RemoveVersion(name, version, guard)
			})
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.cfg.Log.Info("config version removed", "config", c.Name, "id", c.ID, "version", version)
		s.audit(r, audit.Event{Event: audit.ConfigVersionRemove, Config: c.Name, ConfigID: c.ID, Version: version})
		w.WriteHeader(http.StatusNoContent)
		return
	}
	c, err := s.checked(r.Context(), s.configs(), ref, s.notInUse,
		func(guard func(store.Secret) error) (store.Secret, error) { return s.configs().Remove(ref, guard) })
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.cfg.Log.Info("config removed", "config", c.Name, "id", c.ID)
	s.audit(r, audit.Event{Event: audit.ConfigRemove, Config: c.Name, ConfigID: c.ID})
	w.WriteHeader(http.StatusNoContent)
}

// configLabels is Docker's config update: the body is a full ConfigSpec, as
// the Docker Go client's ConfigUpdate sends it (with the data it read), and
// only its labels may differ from the config's, as in Swarm.
func (s *Server) configLabels(w http.ResponseWriter, r *http.Request) {
	want, ok := queryVersion(w, r)
	if !ok {
		return
	}
	var spec swarm.ConfigSpec
	if !decode(w, r, &spec) {
		return
	}
	ref := r.PathValue("ref")
	if spec.Data != nil {
		// Swarm compares the data with the stored one.
		cur, _, err := s.configs().Reveal(ref, 0)
		same := err == nil && subtle.ConstantTimeCompare(cur, spec.Data) == 1
		clear(cur)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if !same {
			s.fail(w, r, errLabelsOnly)
			return
		}
	}
	c, err := s.configs().UpdateLabels(ref, want, spec.Labels, func(c store.Secret) error {
		if spec.Name != c.Name || !sameTemplating(spec.Templating, c.Template) {
			return errLabelsOnly
		}
		return nil
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.cfg.Log.Info("config labels updated", "config", c.Name, "id", c.ID)
	s.audit(r, audit.Event{Event: audit.ConfigLabels, Config: c.Name, ConfigID: c.ID})
	w.WriteHeader(http.StatusOK)
}

// configUpdate is secretd's rotation of a config: a new version of its
// data, which running containers see in place.
func (s *Server) configUpdate(w http.ResponseWriter, r *http.Request) {
	want, ok := queryVersion(w, r)
	if !ok {
		return
	}
	var req api.ConfigUpdateRequest
	if !decode(w, r, &req) {
		return
	}
	if req.Keep < 0 {
		writeError(w, http.StatusBadRequest, "keep must not be negative")
		return
	}
	s.rotate(w, r, s.configs(), want, req)
}
