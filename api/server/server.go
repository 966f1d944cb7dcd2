// Package server serves secretd's HTTP API: Docker-shaped secret endpoints
// for the stock docker CLI, and secretd's own under /secretd/.
package server

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/versions"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/errdefs"
	"github.com/secretd/secretd/internal/audit"
	"github.com/secretd/secretd/internal/store"
)

// Tasks is what the API asks the controller: who uses a secret, and the
// whole task table for `secretd ps`.
type Tasks interface {
	// Users returns the names of containers that declare or hold the secret.
	Users(ctx context.Context, sec store.Secret) ([]string, error)
	// Tasks returns the task table.
	Tasks() []api.Task
}

// Containers is what the API asks the controller about single containers:
// live grants and revokes, and pinned versions.
type Containers interface {
	// UpdateContainer grants and revokes secrets of one container, live.
	UpdateContainer(ctx context.Context, ref string, req api.ContainerUpdateRequest) (api.Task, error)
	// Pins maps each pinned version of a secret to the containers pinning it.
	Pins(ctx context.Context, sec store.Secret) (map[int][]string, error)
}

// Rotations tells the API whether a new version reached every container
// that follows the secret on this host.
type Rotations interface {
	// RotationError returns why version of the secret with id did not
	// reach every container, naming them, or nil.
	RotationError(id string, version int) error
	// Rotated returns what version of the secret with id did when it left
	// containers for later (a file bound at an absolute target gets it at
	// its next start); nil when it has nothing to tell.
	Rotated(id string, version int) *api.Rotation
}

// Renders checks, before a new version of a secret or config is stored,
// that every running container whose templates read it can render them
// with the new data.
type Renders interface {
	// CheckUpdate fails, naming the containers and templates, when a
	// rendering that reads sec would fail with data as its next version.
	CheckUpdate(ctx context.Context, sec store.Secret, data []byte) error
}

// Config is what a Server serves.
type Config struct {
	Store   *store.Store
	KeyFile string
	// Tasks may be nil when no controller runs (API-only tests).
	Tasks Tasks
	// Containers may be nil too.
	Containers Containers
	// Status fills the engine and mount fields of `secretd status`.
	Status  func(*api.Status)
	Version string
	Log     *slog.Logger
	// Audit receives the trail of changes and refusals; nil keeps none.
	Audit *audit.Logger
	// Metrics counts failed requests; nil counts nothing.
	Metrics Metrics
	// Sources checks and runs driver secrets; nil refuses --driver.
	Sources Sources
	// Rotations fails a secret update that did not reach every container;
	// nil reports none.
	Rotations Rotations
	// Renders refuses an update that a running container's template could
	// not render; nil checks none.
	Renders Renders
	// ReadTimeout bounds reading a whole request, body included;
	// IdleTimeout how long a kept-alive connection may sit unused;
	// HandlerTimeout how long one request may take (key rotation gets
	// slowFactor times it), its response included. Zero means the default.
	ReadTimeout, IdleTimeout, HandlerTimeout time.Duration
}

// Defaults of the server's timeouts. Every request is small (a secret is
// under 500 KiB) and answered from memory or one store transaction, so
// these only ever cut off a stuck or hostile client.
const (
	DefaultReadTimeout    = 30 * time.Second
	DefaultIdleTimeout    = 2 * time.Minute
	DefaultHandlerTimeout = 90 * time.Second
	// slowFactor stretches the deadline of a KEK rotation, which re-wraps
	// every data key in one transaction.
	slowFactor = 5
	// writeSlack is how long after its deadline a handler may still
	// write its answer (the error saying it gave up).
	writeSlack = 5 * time.Second
)

// slowRoutes get slowFactor times the handler timeout.
var slowRoutes = map[string]bool{"POST /secretd/key/rotate": true}

func (s *Server) handlerTimeout(pattern string) time.Duration {
	d := cmp.Or(s.cfg.HandlerTimeout, DefaultHandlerTimeout)
	if slowRoutes[pattern] {
		d *= slowFactor
	}
	return d
}

// Server is the API's http.Handler.
type Server struct {
	cfg      Config
	mux      *http.ServeMux
	listJSON listJSON
}

// New returns a Server for cfg.
func New(cfg Config) *Server {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	s.routes()
	return s
}

func (s *Server) routes() {
	h := s.mux.HandleFunc
	h("GET /_ping", s.ping)
	h("HEAD /_ping", s.ping)
	h("GET /version", s.version)
	h("GET /secrets", s.secretList)
	h("POST /secrets/create", s.secretCreate)
	h("GET /secrets/{ref}", s.secretInspect)
	h("DELETE /secrets/{ref}", s.secretRemove)
	h("POST /secrets/{ref}/update", s.secretLabels)
	h("POST /secretd/secrets/{ref}/update", s.secretUpdate)
	h("POST /secretd/containers/{ref}/update", s.containerUpdate)
	h("POST /secretd/unlock", s.unlock)
	h("GET /secretd/unlock-key", s.unlockKey)
	h("POST /secretd/unlock-key/rotate", s.unlockKeyRotate)
	h("POST /secretd/key/rotate", s.keyRotate)
	h("GET /secretd/secrets", s.secretTable)
	h("GET /configs", s.configList)
	h("POST /configs/create", s.configCreate)
	h("GET /configs/{ref}", s.configInspect)
	h("DELETE /configs/{ref}", s.configRemove)
	h("POST /configs/{ref}/update", s.configLabels)
	h("POST /secretd/configs/{ref}/update", s.configUpdate)
	h("GET /secretd/configs", s.configTable)
	h("GET /secretd/tasks", s.tasks)
	h("GET /secretd/status", s.status)
	h("/", s.notServed)
}

// bigBodies are the routes that carry a config's data, which may be twice
// a secret's size.
var bigBodies = map[string]bool{
	"POST /configs/create":               true,
	"POST /configs/{ref}/update":         true,
	"POST /secretd/configs/{ref}/update": true,
}

// versionPrefix matches the /v1.55 a Docker client puts before every path,
// as the Engine's router does (any digits and dots).
var versionPrefix = regexp.MustCompile(`^/v([0-9][0-9.]*)/`)

// ServeHTTP strips the API version prefix, caps the body and logs the
// request without its body.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	version := ""
	if m := versionPrefix.FindStringSubmatchIndex(r.URL.Path); m != nil {
		version = r.URL.Path[m[2]:m[3]]
		r.URL.Path = r.URL.Path[m[1]-1:]
		r.URL.RawPath = ""
	}
	_, pattern := s.mux.Handler(r)
	limit := int64(api.MaxBodyBytes)
	if bigBodies[pattern] {
		limit = api.MaxConfigBodyBytes
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	// The headers the Engine's version middleware puts on every answer.
	rec.Header().Set("Api-Version", api.APIVersion)
	rec.Header().Set("Ostype", runtime.GOOS)
	rec.Header().Set("Server", "secretd/"+s.cfg.Version+" ("+runtime.GOOS+")")
	// Anything the mux would answer itself (a redirect, a 405) gets the
	// Engine's JSON 404 instead of net/http's text body.
	if pattern == "" || !clean(r) {
		writeError(rec, http.StatusNotFound, "page not found")
	} else if err := checkVersion(version); err != nil {
		writeError(rec, http.StatusBadRequest, err.Error())
	} else {
		// Each request has a deadline of its own: whatever it waits on
		// (the engine, another host, a lock) gives up with it, and the
		// connection is cut if even the answer cannot be written.
		d := s.handlerTimeout(pattern)
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d + writeSlack))
		s.mux.ServeHTTP(rec, r.WithContext(ctx))
	}
	s.cfg.Log.Debug("api request", "method", r.Method, "path", r.URL.Path, "status", rec.status, "duration", time.Since(start))
}

// checkVersion refuses a path's API version outside MinAPIVersion to
// APIVersion with the Engine's own words, which clients recognise; no
// version (an unversioned path) means the newest.
func checkVersion(v string) error {
	switch {
	case v == "":
		return nil
	case versions.LessThan(v, api.MinAPIVersion):
		return fmt.Errorf("client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version", v, api.MinAPIVersion)
	case versions.GreaterThan(v, api.APIVersion):
		return fmt.Errorf("client version %s is too new. Maximum supported API version is %s", v, api.APIVersion)
	}
	return nil
}

// clean reports whether the mux would serve the path as it is rather than
// redirect to a cleaned form with an HTML body.
func clean(r *http.Request) bool {
	p := r.URL.Path
	if p == "" || p[0] != '/' {
		return false
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c == p
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Serve serves the API on l until ctx ends, then drains for up to 5 seconds.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	hs := &http.Server{
		Handler: s, ConnContext: connContext,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       cmp.Or(s.cfg.ReadTimeout, DefaultReadTimeout),
		IdleTimeout:       cmp.Or(s.cfg.IdleTimeout, DefaultIdleTimeout),
		// A backstop: ServeHTTP sets each request's own write deadline.
		WriteTimeout: s.handlerTimeout("POST /secretd/key/rotate") + writeSlack,
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(sctx)
	}()
	if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, api.ErrorResponse{Message: msg})
}

// fail maps an error kind to the status code the Docker Engine uses.
// Messages of unknown errors are not shown: they may name internals.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	s.observeFailure(r, err)
	code, ok := errdefs.HTTPStatus(err)
	switch {
	case ok:
	case errors.Is(err, context.DeadlineExceeded) && r.Context().Err() != nil:
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("secretd gave up on this request after its deadline (%s): what it waited for did not answer; try again", s.handlerTimeout(r.Pattern)))
		return
	case errors.Is(err, syscall.ENOSPC):
		s.cfg.Log.Error("data root is full", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInsufficientStorage, "no space left on secretd's data root: nothing was stored; free space and retry")
		return
	default:
		s.cfg.Log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal error: see the secretd log")
		return
	}
	writeError(w, code, err.Error())
}

// decode reads exactly one JSON value into v, refusing unknown fields and
// wrong types with 400 and an oversized body with 413.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("unsupported Content-Type %q: use application/json", ct))
		return false
	}
	if err := Decode(r.Body, v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", tooBig.Limit))
		} else {
			writeError(w, http.StatusBadRequest, err.Error())
		}
		return false
	}
	return true
}

// Decode is the API's strict JSON decoding, exported for its fuzz target and
// for tests: one value, no unknown fields, nothing after it.
func Decode(body io.Reader, v any) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return err
		}
		if errors.Is(err, io.EOF) {
			return errors.New("invalid JSON: request body is empty")
		}
		return fmt.Errorf("invalid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if dec.More() {
		return errors.New("invalid JSON: unexpected data after the request object")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return err
		}
		return errors.New("invalid JSON: unexpected data after the request object")
	}
	return nil
}
