package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/errdefs"
	"github.com/secretd/secretd/internal/audit"
	"github.com/secretd/secretd/internal/store"
	"github.com/secretd/secretd/internal/templating"
)

var storeFilterAll = store.Filter{}

// toAPI converts store metadata to the Docker shape the CLI decodes.
func toAPI(s store.Secret) api.Secret {
	out := api.Secret{
		Secret: swarm.Secret{
			ID: s.ID,
			Meta: swarm.Meta{
				Version:   swarm.Version{Index: s.Index},
				CreatedAt: s.CreatedAt,
				UpdatedAt: s.UpdatedAt,
			},
			Spec: swarm.SecretSpec{Annotations: swarm.Annotations{Name: s.Name, Labels: s.Labels}},
		},
		CurrentVersion: s.Current,
	}
	if out.Spec.Labels == nil {
		out.Spec.Labels = map[string]string{}
	}
	if s.Template != "" {
		out.Spec.Templating = &swarm.Driver{Name: s.Template}
	}
	if src := s.Source; src != nil {
		// The stock CLI shows Spec.Driver; the options' values stay sealed.
		out.Spec.Driver = &swarm.Driver{Name: src.Driver}
		out.Source = &api.SecretSource{Driver: src.Driver, OptionKeys: src.OptionKeys, Cache: src.Cache}
		if src.Refresh > 0 {
			out.Source.Refresh = src.Refresh.String()
		}
	}
	for _, v := range s.Versions {
		out.Versions = append(out.Versions, api.SecretVersion{Version: v.Version, CreatedAt: v.CreatedAt})
	}
	return out
}

// listFilters parses the Docker "filters" query parameter; the accepted keys
// are the Engine's for /secrets.
func listFilters(r *http.Request) (store.Filter, error) {
	args, err := filters.FromJSON(r.URL.Query().Get("filters"))
	if err != nil {
		return store.Filter{}, errdefs.Errorf(errdefs.ErrInvalid, "invalid filters: %v", err)
	}
	accepted := map[string]bool{"name": true, "names": true, "id": true, "label": true}
	for _, k := range args.Keys() {
		if !accepted[k] {
			return store.Filter{}, errdefs.Errorf(errdefs.ErrInvalid, "invalid filter '%s'", k)
		}
	}
	return store.Filter{
		Names:        args.Get("names"),
		NamePrefixes: args.Get("name"),
		IDPrefixes:   args.Get("id"),
		Labels:       args.Get("label"),
	}, nil
}

func (s *Server) secretList(w http.ResponseWriter, r *http.Request) {
	list, f, ok := s.listed(w, r)
	if !ok {
		return
	}
	body, err := s.listJSON.encode(list, f.All())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

// secretTable is secretList by column, for the secretd CLI.
func (s *Server) secretTable(w http.ResponseWriter, r *http.Request) {
	list, _, ok := s.listed(w, r)
	if !ok {
		return
	}
	t := api.MakeSecretTable(len(list))
	for _, sec := range list {
		t.Append(sec.ID, sec.Name, sec.Current, sec.CreatedAt, sec.UpdatedAt, sec.Labels)
		t.SetTemplate(sec.ID, sec.Template)
		if sec.Source != nil {
			t.SetDriver(sec.ID, s.withLastMount(sec).Source)
		}
	}
	writeJSON(w, http.StatusOK, t)
}

// listed is the secrets the request's filters select; on a bad filter or
// a store error it has answered and returns false.
func (s *Server) listed(w http.ResponseWriter, r *http.Request) ([]store.Secret, store.Filter, bool) {
	f, err := listFilters(r)
	if err != nil {
		s.fail(w, r, err)
		return nil, f, false
	}
	list, err := s.cfg.Store.List(f)
	if err != nil {
		s.fail(w, r, err)
		return nil, f, false
	}
	return list, f, true
}

func (s *Server) secretCreate(w http.ResponseWriter, r *http.Request) {
	var req api.SecretCreateRequest
	if !decode(w, r, &req) {
		return
	}
	spec := req.SecretSpec
	defer clear(spec.Data)
	r.SetPathValue("ref", spec.Name) // names the secret in a refusal's audit line
	tpl, err := templateDriver(store.KindSecret, spec.Templating, spec.Data)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	src, err := s.sourceSpec(r.Context(), req, actor(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	data := spec.Data
	if src != nil {
		data = nil // a driver secret's value goes to its source, not the store
	}
	sec, err := s.cfg.Store.Create(store.Spec{Name: spec.Name, Labels: spec.Labels, Data: data, Source: src, Template: tpl})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if src != nil {
		id := sec.ID
		if sec, err = s.primeSource(r.Context(), sec, spec.Data); err != nil {
			// The source ran (a command as root, or a plugin) and the
			// create was undone: the trail keeps that it happened.
			s.audit(r, audit.Event{Event: audit.SecretCreateFailed, Secret: spec.Name, SecretID: id, Reason: err.Error()})
			s.fail(w, r, err)
			return
		}
	}
	s.cfg.Log.Info("secret created", "secret", sec.Name, "id", sec.ID, "version", sec.Current)
	s.audit(r, audit.Event{Event: audit.SecretCreate, Secret: sec.Name, SecretID: sec.ID, Version: sec.Current})
	writeJSON(w, http.StatusCreated, swarm.SecretCreateResponse{ID: sec.ID})
}

func (s *Server) secretInspect(w http.ResponseWriter, r *http.Request) {
	sec, err := s.cfg.Store.Get(r.PathValue("ref"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.withLastMount(sec))
}

// withLastMount is toAPI with, for a driver secret, where its last Mount
// got the value.
func (s *Server) withLastMount(sec store.Secret) api.Secret {
	out := toAPI(sec)
	if out.Source != nil && s.cfg.Sources != nil {
		if st, ok := s.cfg.Sources.LastMount(sec.ID); ok {
			out.Source.LastMount = &api.SourceMount{At: st.At, Cached: st.Cached, Error: st.Err}
		}
	}
	return out
}

func (s *Server) secretRemove(w http.ResponseWriter, r *http.Request) {
	ref := r.PathValue("ref")
	// NAME@V removes one kept version; a name never contains '@'.
	if name, v, ok := strings.Cut(ref, "@"); ok {
		version, err := strconv.Atoi(v)
		if err != nil || version < 1 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid version %q in %q: use NAME@N with N a positive number", v, ref))
			return
		}
		sec, err := s.checked(r.Context(), s.cfg.Store, name,
			func(ctx context.Context, sec store.Secret) error { return s.notPinned(ctx, sec, version) },
			func(guard func(store.Secret) error) (store.Secret, error) {
				return s.cfg.Store.RemoveVersion(name, version, guard)
			})
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.cfg.Log.Info("secret version removed", "secret", sec.Name, "id", sec.ID, "version", version)
		s.audit(r, audit.Event{Event: audit.SecretVersionRemove, Secret: sec.Name, SecretID: sec.ID, Version: version})
		w.WriteHeader(http.StatusNoContent)
		return
	}
	// A value secretd put into a source at create (the shell driver's
	// store command) is deleted there first, as Podman does: if that fails
	// the secret stays, and rm can be tried again.
	deleted := false
	check := func(ctx context.Context, sec store.Secret) error {
		if err := s.notInUse(ctx, sec); err != nil {
			return err
		}
		if deleted || sec.Source == nil || !sec.Source.Stored || s.cfg.Sources == nil {
			return nil
		}
		if err := s.cfg.Sources.DeleteValue(r.Context(), sec); errors.Is(err, errdefs.ErrForbidden) {
			// A delete command this host does not run (another host's
			// root named it, or nobody is recorded as naming it) stays
			// unrun; the secret still goes, or it could never be removed.
			s.cfg.Log.Warn("secret removed without running its delete command, which this host does not run: delete its value from the source by hand", "secret", sec.Name, "id", sec.ID, "err", err)
		} else if err != nil {
			return errdefs.Errorf(errdefs.ErrInvalid, "secret '%s' not removed: its value could not be deleted from its source: %v: fix the source and try again", sec.Name, err)
		}
		deleted = true
		return nil
	}
	sec, err := s.checked(r.Context(), s.cfg.Store, ref, check,
		func(guard func(store.Secret) error) (store.Secret, error) { return s.cfg.Store.Remove(ref, guard) })
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if sec.Source != nil && s.cfg.Sources != nil {
		s.cfg.Sources.Sync() // stops its refresher
	}
	s.cfg.Log.Info("secret removed", "secret", sec.Name, "id", sec.ID)
	s.audit(r, audit.Event{Event: audit.SecretRemove, Secret: sec.Name, SecretID: sec.ID})
	w.WriteHeader(http.StatusNoContent)
}

// checkTimeout bounds the gathering of a secret's users or pins, which asks
// the Docker Engine (and the other hosts' claims).
const checkTimeout = 5 * time.Second

// checkAttempts bounds how often a write is retried when the secret
// changed between its check and its commit.
const checkAttempts = 3

var errChanged = errors.New("secret changed during the check")

// checked runs check on the secret outside any store transaction (it asks
// the engine, which may hang: it must never hold the store's write lock),
// then commits with a guard that only verifies the secret is the one
// checked, at the same index. A secret that changed meanwhile is checked
// again.
func (s *Server) checked(ctx context.Context, view *store.Store, ref string, check func(context.Context, store.Secret) error,
	commit func(guard func(store.Secret) error) (store.Secret, error)) (store.Secret, error) {
	for attempt := 1; ; attempt++ {
		before, err := view.Get(ref)
		if err != nil {
			return store.Secret{}, err
		}
		cctx, cancel := context.WithTimeout(ctx, checkTimeout)
		err = check(cctx, before)
		cancel()
		if err != nil {
			return store.Secret{}, err
		}
		sec, err := commit(unchanged(before))
		if errors.Is(err, errChanged) {
			if attempt < checkAttempts {
				continue
			}
			return store.Secret{}, errdefs.Errorf(errdefs.ErrExists, "%s '%s' kept changing while its users were checked: try again", before.Kind, before.Name)
		}
		return sec, err
	}
}

// unchanged is a guard that holds while the secret is still before.
func unchanged(before store.Secret) func(store.Secret) error {
	return func(cur store.Secret) error {
		if cur.ID != before.ID || cur.Index != before.Index {
			return errChanged
		}
		return nil
	}
}

// notInUse refuses to remove a secret (or config) a container holds,
// naming the containers as Swarm names the services.
func (s *Server) notInUse(ctx context.Context, sec store.Secret) error {
	if s.cfg.Tasks == nil {
		return nil
	}
	users, err := s.cfg.Tasks.Users(ctx, sec)
	if err != nil {
		return err
	}
	if len(users) == 0 {
		return nil
	}
	slices.Sort(users)
	plural := ""
	if len(users) > 1 {
		plural = "s"
	}
	return errdefs.Errorf(errdefs.ErrInUse, "%s '%s' is in use by the following container%s: %s", sec.Kind, sec.Name, plural, strings.Join(users, ", "))
}

// notPinned refuses to remove a version a container pins.
func (s *Server) notPinned(ctx context.Context, sec store.Secret, version int) error {
	if s.cfg.Containers == nil {
		return nil
	}
	pins, err := s.cfg.Containers.Pins(ctx, sec)
	if err != nil {
		return err
	}
	if users := pins[version]; len(users) > 0 {
		return errdefs.Errorf(errdefs.ErrInUse, "version %d of %s '%s' is pinned by the following container%s: %s", version, sec.Kind, sec.Name, plural(users), strings.Join(users, ", "))
	}
	return nil
}

// pinnedVersions lists the versions containers pin, which an update never
// drops.
func (s *Server) pinnedVersions(ctx context.Context, sec store.Secret) ([]int, error) {
	if s.cfg.Containers == nil {
		return nil, nil
	}
	pins, err := s.cfg.Containers.Pins(ctx, sec)
	if err != nil {
		return nil, err
	}
	var out []int
	for v := range pins {
		out = append(out, v)
	}
	return out, nil
}

func plural(names []string) string {
	if len(names) > 1 {
		return "s"
	}
	return ""
}

func (s *Server) containerUpdate(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Containers == nil {
		writeError(w, http.StatusServiceUnavailable, "no controller is running")
		return
	}
	var req api.ContainerUpdateRequest
	if !decode(w, r, &req) {
		return
	}
	task, err := s.cfg.Containers.UpdateContainer(r.Context(), r.PathValue("ref"), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.audit(r, audit.Event{Event: audit.ContainerUpdate, Container: task.ContainerName, ContainerID: task.ContainerID,
		Added: req.SecretAdd, Removed: req.SecretRm})
	writeJSON(w, http.StatusOK, task)
}

// queryVersion reads Swarm's ?version= (the index a writer last saw) for
// optimistic concurrency; 0 when absent skips the check.
func queryVersion(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	v := r.URL.Query().Get("version")
	if v == "" {
		return 0, true
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid version %q: it must be a number", v))
		return 0, false
	}
	return n, true
}

// errLabelsOnly is Swarm's answer to an update that changes more than labels.
var errLabelsOnly = errdefs.Errorf(errdefs.ErrInvalid, "only updates to Labels are allowed")

// secretLabels is the Docker Engine's secret update: the body is a full
// SecretSpec, as the Docker Go client's SecretUpdate sends it, and only its
// labels may differ from the secret's. secretd's data rotation has its own
// path (secretUpdate) because Swarm refuses data here.
func (s *Server) secretLabels(w http.ResponseWriter, r *http.Request) {
	want, ok := queryVersion(w, r)
	if !ok {
		return
	}
	var spec swarm.SecretSpec
	if !decode(w, r, &spec) {
		return
	}
	// Swarm compares the data with the stored one; secretd refuses any,
	// so that an update cannot be used to test a guess of the data.
	hasData := len(spec.Data) > 0
	clear(spec.Data)
	if hasData || spec.Driver != nil {
		s.fail(w, r, errLabelsOnly)
		return
	}
	sec, err := s.cfg.Store.UpdateLabels(r.PathValue("ref"), want, spec.Labels, func(sec store.Secret) error {
		// The Docker Go client sends back the spec it read: the stored
		// template driver is no change.
		if spec.Name != sec.Name || !sameTemplating(spec.Templating, sec.Template) {
			return errLabelsOnly
		}
		return nil
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.cfg.Log.Info("secret labels updated", "secret", sec.Name, "id", sec.ID)
	s.audit(r, audit.Event{Event: audit.SecretLabels, Secret: sec.Name, SecretID: sec.ID})
	w.WriteHeader(http.StatusOK)
}

// secretUpdate is secretd's rotation: a new version of the data, which
// running containers see in place.
func (s *Server) secretUpdate(w http.ResponseWriter, r *http.Request) {
	want, ok := queryVersion(w, r)
	if !ok {
		return
	}
	var req api.SecretUpdateRequest
	if !decode(w, r, &req) {
		return
	}
	if req.Keep < 0 {
		writeError(w, http.StatusBadRequest, "keep must not be negative")
		return
	}
	s.rotate(w, r, s.cfg.Store, want, req)
}

// driven refuses to store a version of a secret whose value comes from a
// secret driver. rotate asks it of the secret it reads anyway, so an
// update costs no read of the store of its own.
func driven(sec store.Secret) error {
	if sec.Source == nil {
		return nil
	}
	return errdefs.Errorf(errdefs.ErrInvalid, "secret '%s' takes its value from secret driver %q: change the value at the source (with --refresh it reaches running containers), or create a secret without a driver", sec.Name, sec.Source.Driver)
}

// rotate stores req.Data as the next version of the secret or config of
// r's reference, in view, and answers once every running container that
// follows it holds the new files (renderings of templates that read it
// included), or with the containers it did not reach.
func (s *Server) rotate(w http.ResponseWriter, r *http.Request, view *store.Store, want uint64, req api.SecretUpdateRequest) {
	defer clear(req.Data)
	ref := r.PathValue("ref")
	kind := view.Kind()
	if req.IfChanged {
		cur, sec, err := view.Reveal(ref, 0)
		same := err == nil && subtle.ConstantTimeCompare(cur, req.Data) == 1
		clear(cur)
		if err := driven(sec); err != nil {
			s.fail(w, r, err)
			return
		}
		if same && (want == 0 || want == sec.Index) {
			// Nothing new to store, but the current version may not have
			// reached every container: run again (compose up), the caller
			// must hear so, as the update that stored it did.
			if s.rotationFailed(w, sec) {
				return
			}
			s.writeRotated(w, sec, nil)
			return
		}
	}
	// The pins, and whether every rendering that reads the secret still
	// renders with the new data, are checked before the store's
	// transaction, as for rm: a template that would no longer render
	// leaves the secret as it was.
	var pins []int
	sec, err := s.checked(r.Context(), view, ref,
		func(ctx context.Context, sec store.Secret) (err error) {
			if err := driven(sec); err != nil {
				return err
			}
			if sec.Template != "" {
				if err := templating.Check(req.Data); err != nil {
					return errdefs.Errorf(errdefs.ErrInvalid, "the new data of %s '%s' is not a valid template: %v", kind, sec.Name, err)
				}
			}
			if s.cfg.Renders != nil {
				if err := s.cfg.Renders.CheckUpdate(ctx, sec, req.Data); err != nil {
					return err
				}
			}
			pins, err = s.pinnedVersions(ctx, sec)
			return err
		},
		func(guard func(store.Secret) error) (store.Secret, error) {
			return view.UpdateAt(ref, want, req.Data, req.Keep, func(cur store.Secret) ([]int, error) {
				if err := guard(cur); err != nil {
					return nil, err
				}
				return pins, nil
			})
		})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.cfg.Log.Info(kind.String()+" updated", kind.String(), sec.Name, "id", sec.ID, "version", sec.Current)
	e := audit.Event{Event: audit.SecretUpdate, Secret: sec.Name, SecretID: sec.ID, Version: sec.Current}
	if kind == store.KindConfig {
		e = audit.Event{Event: audit.ConfigUpdate, Config: sec.Name, ConfigID: sec.ID, Version: sec.Current}
	}
	s.audit(r, e)
	// The version is stored either way; a user who gets 200 must be able to
	// trust that every container reads it, or hear which ones read it only
	// from their next start.
	if s.rotationFailed(w, sec) {
		return
	}
	var rot *api.Rotation
	if s.cfg.Rotations != nil {
		rot = s.cfg.Rotations.Rotated(sec.ID, sec.Current)
	}
	s.writeRotated(w, sec, rot)
}

// writeRotated answers a rotation with the secret or config as stored, and
// what its new version did to the containers that use it (nil when the
// answer has nothing to tell).
func (s *Server) writeRotated(w http.ResponseWriter, sec store.Secret, rot *api.Rotation) {
	if sec.Kind == store.KindConfig {
		// Without the data: the answer of secretd's own path, not Docker's.
		out := toAPIConfig(sec, nil)
		out.Rotation = rot
		writeJSON(w, http.StatusOK, out)
		return
	}
	out := toAPI(sec)
	out.Rotation = rot
	writeJSON(w, http.StatusOK, out)
}

// templateDriver checks a create's Templating: the one driver is Swarm's
// "golang", and the data must parse as a template.
func templateDriver(kind store.Kind, t *swarm.Driver, data []byte) (string, error) {
	if t == nil {
		return "", nil
	}
	if t.Name != templating.Driver {
		return "", errdefs.Errorf(errdefs.ErrInvalid, "unknown template driver %q: the only one is %s", t.Name, templating.Driver)
	}
	if len(t.Options) > 0 {
		return "", errdefs.Errorf(errdefs.ErrInvalid, "template driver %s takes no options", t.Name)
	}
	if err := templating.Check(data); err != nil {
		return "", errdefs.Errorf(errdefs.ErrInvalid, "the %s's data is not a valid template: %v", kind, err)
	}
	return t.Name, nil
}

// sameTemplating reports whether a spec's Templating names the stored
// template driver.
func sameTemplating(t *swarm.Driver, stored string) bool {
	if t == nil {
		return stored == ""
	}
	return t.Name == stored && len(t.Options) == 0
}

// rotationFailed answers with the error of sec's current version if it did
// not reach every container on this host, and reports whether it did.
func (s *Server) rotationFailed(w http.ResponseWriter, sec store.Secret) bool {
	if s.cfg.Rotations == nil {
		return false
	}
	err := s.cfg.Rotations.RotationError(sec.ID, sec.Current)
	if err == nil {
		return false
	}
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.Error("api", err)
	}
	writeError(w, http.StatusInternalServerError, err.Error())
	return true
}
