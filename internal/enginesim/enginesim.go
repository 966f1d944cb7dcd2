// Package enginesim simulates a Docker Engine for scale tests only: an HTTP
// server on a unix socket that answers the few endpoints secretd's
// controller uses (ping, version, container list and inspect, the event
// stream), and the start a `docker run` asks for, for thousands of
// containers that exist only in memory. Real containers stop at a few
// hundred on a small machine; this shows how the controller behaves at the
// size of a large host.
//
// It is not an engine: nothing runs, nothing is mounted, and it mimics
// dockerd only as far as the controller can tell. Every behaviour claim
// about secretd stays covered by the end-to-end suite against the real
// engine.
package enginesim

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/versions"
)

// Options describe the simulated fleet.
type Options struct {
	// Containers is how many running containers exist at start.
	Containers int
	// Driver is the volume driver of each container's secrets volume.
	Driver string
	// Secrets are the names containers declare, handed out round robin,
	// PerContainer to each (default 5) in the secretd.secrets label.
	Secrets      []string
	PerContainer int
	// Labels are added to every container.
	Labels map[string]string
	// Destination is where the volume is mounted (default /run/secrets).
	Destination string
	// Start, when set, runs inside POST /containers/{id}/start before the
	// container runs, where dockerd mounts its volumes; an error fails the
	// start.
	Start func(Container) error
	// StartWork stands in for what dockerd does in a start before it
	// mounts the volumes (the root filesystem's mount, the network, the
	// runtime spec): the start waits this long before calling Start.
	StartWork time.Duration
	// Profile is the engine version simulated; the zero Profile is
	// Docker29.
	Profile Profile
}

// Sim is a running simulated engine.
type Sim struct {
	// Socket is the unix socket path; Host is it as a DOCKER_HOST value.
	Socket string
	Host   string

	opts Options
	ln   net.Listener
	srv  *http.Server

	mu      sync.Mutex
	order   []*ctr // creation order: lists answer newest first, as dockerd
	byID    map[string]*ctr
	nextSec int
	seq     int
	subs    map[*sub]struct{}
	dropped int
	rng     *mrand.Rand
	// held, while not nil, is closed by Release: until then every request
	// waits, as with a dockerd that is still restoring its containers.
	held chan struct{}
}

type ctr struct {
	id, name string
	created  time.Time
	state    container.ContainerState
	exitCode int
	labels   map[string]string
	mounts   []container.MountPoint
}

// Start listens on socket (removed first when stale) and serves until
// Close.
func Start(socket string, opts Options) (*Sim, error) {
	if opts.PerContainer == 0 {
		opts.PerContainer = 5
	}
	if opts.Destination == "" {
		opts.Destination = "/run/secrets"
	}
	if opts.Driver == "" {
		return nil, errors.New("enginesim: Options.Driver is empty")
	}
	if opts.Profile == (Profile{}) {
		opts.Profile = Docker29
	}
	if err := os.Remove(socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	ln, err := net.Listen("unix", socket)
	if err != nil {
		return nil, err
	}
	s := &Sim{
		Socket: socket, Host: "unix://" + socket, opts: opts, ln: ln,
		byID: map[string]*ctr{}, subs: map[*sub]struct{}{},
		rng: mrand.New(mrand.NewPCG(1, 2)),
	}
	s.mu.Lock()
	for range opts.Containers {
		s.addLocked(randomID(), container.StateRunning)
	}
	s.mu.Unlock()
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// Close stops the server and ends every event stream.
func (s *Sim) Close() error {
	s.BreakStreams()
	err := s.srv.Close()
	os.Remove(s.Socket)
	return err
}

func randomID() string {
	var b [32]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// addLocked adds a container with an anonymous volume of the driver, as
// `docker run --mount type=volume,volume-driver=...` makes one.
func (s *Sim) addLocked(volume string, state container.ContainerState) *ctr {
	s.seq++
	var decl []string
	for range min(s.opts.PerContainer, len(s.opts.Secrets)) {
		decl = append(decl, s.opts.Secrets[s.nextSec%len(s.opts.Secrets)])
		s.nextSec++
	}
	labels := map[string]string{}
	for k, v := range s.opts.Labels {
		labels[k] = v
	}
	if len(decl) > 0 {
		labels["secretd.secrets"] = strings.Join(decl, ";")
	}
	c := &ctr{
		id: randomID(), name: fmt.Sprintf("sim-%06d", s.seq),
		// Distinct creation times keep "newest first" well defined.
		created: time.Unix(1_700_000_000+int64(s.seq), 0),
		state:   state, labels: labels,
		mounts: []container.MountPoint{{
			Type: mount.TypeVolume, Name: volume, Driver: s.opts.Driver,
			Destination: s.opts.Destination, RW: true,
		}},
	}
	s.order = append(s.order, c)
	s.byID[c.id] = c
	return c
}

// Container is what a test needs to know about a simulated container.
type Container struct {
	ID, Name, Volume string
	State            container.ContainerState
}

// Containers lists the simulated containers, oldest first.
func (s *Sim) Containers() []Container {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Container, 0, len(s.order))
	for _, c := range s.order {
		out = append(out, c.public())
	}
	return out
}

func (c *ctr) public() Container {
	return Container{ID: c.id, Name: c.name, Volume: c.mounts[0].Name, State: c.state}
}

// Dropped counts event subscribers cut off because they fell too far
// behind, as dockerd drops slow readers.
func (s *Sim) Dropped() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// Profile is the engine version the simulator shows.
func (s *Sim) Profile() Profile { return s.opts.Profile }

// Hold makes every request wait, unanswered, until Release or until its
// client gives up: a dockerd restoring its containers at boot answers
// nothing, /_ping included.
func (s *Sim) Hold() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held == nil {
		s.held = make(chan struct{})
	}
}

// Release answers the requests Hold kept waiting, and every one after.
func (s *Sim) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held != nil {
		close(s.held)
		s.held = nil
	}
}

// serve routes like dockerd: every path may carry a /vX.Y version prefix,
// which must lie within the profile's versions.
func (s *Sim) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	held := s.held
	s.mu.Unlock()
	if held != nil {
		select {
		case <-held:
		case <-r.Context().Done():
			return
		}
	}
	p := s.opts.Profile
	h := w.Header()
	h.Set("Api-Version", p.APIVersion)
	h.Set("Ostype", runtime.GOOS)
	h.Set("Server", "Docker/enginesim ("+runtime.GOOS+")")
	path := r.URL.Path
	if m := versionPrefix.FindStringSubmatch(path); m != nil {
		path = path[len(m[0]):]
		switch v := m[1]; {
		case versions.LessThan(v, p.MinAPIVersion):
			httpError(w, http.StatusBadRequest, fmt.Sprintf("client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version", v, p.MinAPIVersion))
			return
		case versions.GreaterThan(v, p.APIVersion):
			httpError(w, http.StatusBadRequest, fmt.Sprintf("client version %s is too new. Maximum supported API version is %s", v, p.APIVersion))
			return
		}
	}
	switch {
	case path == "/_ping" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		s.ping(w, r)
	case r.Method == http.MethodPost && strings.HasPrefix(path, "/containers/") && strings.HasSuffix(path, "/start"):
		s.start(w, strings.TrimSuffix(strings.TrimPrefix(path, "/containers/"), "/start"))
	case r.Method != http.MethodGet:
		httpError(w, http.StatusNotFound, "page not found")
	case path == "/version":
		writeJSON(w, types.Version{
			Version: "enginesim", APIVersion: s.opts.Profile.APIVersion, MinAPIVersion: s.opts.Profile.MinAPIVersion,
			Os: runtime.GOOS, Arch: runtime.GOARCH, GoVersion: runtime.Version(),
		})
	case path == "/containers/json":
		s.list(w, r)
	case strings.HasPrefix(path, "/containers/") && strings.HasSuffix(path, "/json"):
		s.inspect(w, strings.TrimSuffix(strings.TrimPrefix(path, "/containers/"), "/json"))
	case strings.HasPrefix(path, "/images/") && strings.HasSuffix(path, "/json"):
		s.image(w, strings.TrimSuffix(strings.TrimPrefix(path, "/images/"), "/json"))
	case path == "/events":
		s.events(w, r)
	default:
		httpError(w, http.StatusNotFound, "page not found")
	}
}

var versionPrefix = regexp.MustCompile(`^/v([0-9][0-9.]*)`)

func (s *Sim) ping(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Docker-Experimental", "false")
	h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write([]byte("OK"))
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

var listFilters = map[string]bool{"id": true, "name": true, "label": true, "volume": true, "status": true}

// list answers GET /containers/json with dockerd's semantics for all,
// limit and the filters above; a stopped container is listed only with
// all=1 or a limit.
func (s *Sim) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := filters.FromJSON(q.Get("filters"))
	if err == nil {
		err = f.Validate(listFilters)
	}
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	all := boolValue(q.Get("all"))
	limit := 0
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil {
			httpError(w, http.StatusBadRequest, "invalid limit: "+v)
			return
		}
	}
	for _, p := range []string{"since", "before", "size"} {
		if q.Has(p) {
			httpError(w, http.StatusBadRequest, "enginesim: "+p+" is not simulated")
			return
		}
	}
	out := []container.Summary{}
	s.mu.Lock()
	candidates := s.order
	if ids := f.Get("id"); len(ids) > 0 {
		candidates = s.byIDsLocked(ids)
	}
	for i := len(candidates) - 1; i >= 0 && (limit <= 0 || len(out) < limit); i-- {
		c := candidates[i]
		if c.state != container.StateRunning && !all && limit <= 0 {
			continue
		}
		if c.matches(f) {
			out = append(out, c.summary())
		}
	}
	s.mu.Unlock()
	writeJSON(w, out)
}

// byIDsLocked narrows a list filtered by ID to the containers whose full ID
// or unique ID prefix was given, in creation order, before the filters
// run: dockerd does the same (filterByNameIDMatches), so a list by ID
// costs it nothing like a walk of every container.
func (s *Sim) byIDsLocked(ids []string) []*ctr {
	var out []*ctr
	for _, id := range ids {
		if c := s.byIDPrefixLocked(id); c != nil && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b *ctr) int { return a.created.Compare(b.created) })
	return out
}

// byIDPrefixLocked resolves a full ID or a unique prefix of one, and
// nothing else: an ID filter never matches names.
func (s *Sim) byIDPrefixLocked(id string) *ctr {
	if c, ok := s.byID[id]; ok {
		return c
	}
	var found *ctr
	for _, c := range s.order {
		if id != "" && strings.HasPrefix(c.id, id) {
			if found != nil {
				return nil
			}
			found = c
		}
	}
	return found
}

func boolValue(v string) bool {
	v = strings.ToLower(strings.TrimSpace(v))
	return v != "" && v != "0" && v != "no" && v != "false" && v != "none"
}

func (c *ctr) matches(f filters.Args) bool {
	if f.Contains("id") && !f.Match("id", c.id) {
		return false
	}
	if f.Contains("name") && !f.Match("name", "/"+c.name) && !f.Match("name", c.name) {
		return false
	}
	if f.Contains("status") && !f.ExactMatch("status", string(c.state)) {
		return false
	}
	if !f.MatchKVList("label", c.labels) {
		return false
	}
	if f.Contains("volume") {
		found := false
		for _, v := range f.Get("volume") {
			for _, m := range c.mounts {
				if v == m.Name || v == m.Destination {
					found = true
				}
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func (c *ctr) summary() container.Summary {
	status := "Up 2 hours"
	switch c.state {
	case container.StateCreated:
		status = "Created"
	case container.StateExited:
		status = fmt.Sprintf("Exited (%d) 1 second ago", c.exitCode)
	}
	return container.Summary{
		ID: c.id, Names: []string{"/" + c.name}, Image: "busybox", ImageID: ImageID,
		Command: "sleep 3600", Created: c.created.Unix(), Ports: []container.Port{},
		Labels: c.labels, State: c.state, Status: status,
		HostConfig: struct {
			NetworkMode string            `json:",omitempty"`
			Annotations map[string]string `json:",omitempty"`
		}{NetworkMode: "none"},
		Mounts: c.mounts,
	}
}

// start answers POST /containers/{id}/start, the second half of a `docker
// run`: Options.Start first, then the container runs and "start" is sent.
// A running container answers 304, as with dockerd.
func (s *Sim) start(w http.ResponseWriter, ref string) {
	s.mu.Lock()
	c := s.findLocked(ref)
	if c == nil {
		s.mu.Unlock()
		httpError(w, http.StatusNotFound, "No such container: "+ref)
		return
	}
	if c.state == container.StateRunning {
		s.mu.Unlock()
		w.WriteHeader(http.StatusNotModified)
		return
	}
	pub := c.public()
	s.mu.Unlock()
	time.Sleep(s.opts.StartWork)
	if s.opts.Start != nil {
		if err := s.opts.Start(pub); err != nil {
			httpError(w, http.StatusInternalServerError, err.Error())
			return
		}
	}
	s.mu.Lock()
	if s.byID[c.id] == c {
		s.startLocked(c)
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// inspect answers GET /containers/{id}/json for a full ID, a unique ID
// prefix or a name, as dockerd resolves them.
func (s *Sim) inspect(w http.ResponseWriter, ref string) {
	s.mu.Lock()
	c := s.findLocked(ref)
	var resp container.InspectResponse
	if c != nil {
		resp = c.inspect()
	}
	s.mu.Unlock()
	if c == nil {
		httpError(w, http.StatusNotFound, "No such container: "+ref)
		return
	}
	writeJSON(w, resp)
}

// ImageID is the one image every simulated container runs, as a fleet
// runs few images: busybox, with no labels.
const ImageID = "sha256:3f57d9401f8d42f986df300f0c69192fc41da28ccc8d797829467780db3dd741"

// image answers an image inspect of ImageID, by ID or as busybox. A
// binding asks for it to refuse declarations that come from an image.
func (s *Sim) image(w http.ResponseWriter, ref string) {
	if ref != ImageID && ref != "busybox" {
		httpError(w, http.StatusNotFound, "No such image: "+ref)
		return
	}
	writeJSON(w, map[string]any{"Id": ref, "RepoTags": []string{"busybox:latest"}, "Config": map[string]any{"Labels": map[string]string{}}})
}

func (s *Sim) findLocked(ref string) *ctr {
	if c, ok := s.byID[ref]; ok {
		return c
	}
	name := strings.TrimPrefix(ref, "/")
	var prefix *ctr
	n := 0
	for _, c := range s.order {
		if c.name == name {
			return c
		}
		if ref != "" && strings.HasPrefix(c.id, ref) {
			prefix = c
			n++
		}
	}
	if n == 1 {
		return prefix
	}
	return nil
}

func (c *ctr) inspect() container.InspectResponse {
	running := c.state == container.StateRunning
	return container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{
			ID: c.id, Created: c.created.UTC().Format(time.RFC3339Nano), Path: "sleep", Args: []string{"3600"},
			State: &container.State{
				// Pid stays 0: no process exists, and a real PID would
				// point callers at some unrelated host process.
				Status: c.state, Running: running, ExitCode: c.exitCode,
				StartedAt: c.created.UTC().Format(time.RFC3339Nano), FinishedAt: "0001-01-01T00:00:00Z",
			},
			Image: ImageID, Name: "/" + c.name, Driver: "overlay2", Platform: "linux",
			HostConfig: &container.HostConfig{NetworkMode: "none"},
		},
		Mounts: c.mounts,
		Config: &container.Config{Image: "busybox", Cmd: []string{"sleep", "3600"}, Labels: c.labels},
	}
}
