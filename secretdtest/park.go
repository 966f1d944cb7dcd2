package secretdtest

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
)

// pluginDir is where dockerd finds legacy plugin sockets, and where the
// daemons under test put theirs. A variable for park's own test.
var pluginDir = "/run/docker/plugins"

// A free slot is parked: its plugin socket answers at once. dockerd asks
// every volume driver it has ever used about a volume name it does not
// know (`docker volume inspect`, docker-compose's existence check before
// it creates a volume), one after the other, and a driver whose socket has
// no listener costs 15 s of connect retries each time. On a shared engine,
// the slots other tests have finished with would turn a compose test's
// `up` into minutes.
var parked struct {
	sync.Mutex
	m map[string]parking
}

// parking is one parked slot: its server, and the socket file it made,
// which is only removed while it is still that file.
type parking struct {
	srv  *http.Server
	file os.FileInfo
}

// park serves a driver that knows no volume on name's socket, until the
// slot is taken again or the process ends.
func park(name string) {
	unpark(name)
	path := filepath.Join(pluginDir, name+".sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return // dockerd then waits out its retries, as with no parking
	}
	// A daemon that takes the slot in another test process replaces the
	// file; closing this listener afterwards must not remove the new one.
	l.SetUnlinkOnClose(false)
	fi, err := os.Stat(path)
	if err != nil {
		l.Close()
		return
	}
	srv := &http.Server{Handler: http.HandlerFunc(parkedDriver)}
	// dockerd keeps idle plugin connections open and reuses them: one to
	// a parked slot would still reach it after a daemon took the slot.
	srv.SetKeepAlivesEnabled(false)
	parked.Lock()
	if parked.m == nil {
		parked.m = map[string]parking{}
	}
	parked.m[name] = parking{srv: srv, file: fi}
	parked.Unlock()
	go srv.Serve(l)
}

// stopParking closes name's parked server, if this process has one, and
// returns the socket file it made.
func stopParking(name string) os.FileInfo {
	parked.Lock()
	p, ok := parked.m[name]
	delete(parked.m, name)
	parked.Unlock()
	if !ok {
		return nil
	}
	p.srv.Close()
	return p.file
}

// unpark frees name's socket path for a daemon about to start: the caller
// holds the slot, so whatever socket is there is stale.
func unpark(name string) {
	stopParking(name)
	os.Remove(filepath.Join(pluginDir, name+".sock"))
}

// CloseParked stops every parked socket of this process and removes the
// files still its own: another test process may hold a slot by now, and
// its daemon's socket must stay. A test binary's TestMain calls it.
func CloseParked() {
	parked.Lock()
	names := make([]string, 0, len(parked.m))
	for name := range parked.m {
		names = append(names, name)
	}
	parked.Unlock()
	for _, name := range names {
		mine := stopParking(name)
		path := filepath.Join(pluginDir, name+".sock")
		if now, err := os.Stat(path); err == nil && mine != nil && os.SameFile(mine, now) {
			os.Remove(path)
		}
	}
}

// parkedDriver is a volume driver that knows no volume and makes none.
func parkedDriver(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/vnd.docker.plugins.v1+json")
	var body any
	switch r.URL.Path {
	case "/Plugin.Activate":
		body = map[string][]string{"Implements": {"VolumeDriver"}}
	case "/VolumeDriver.List":
		body = map[string][]any{"Volumes": {}}
	case "/VolumeDriver.Capabilities":
		body = map[string]any{"Capabilities": map[string]string{"Scope": "local"}}
	default:
		body = map[string]string{"Err": "secretdtest: no secretd serves this driver slot now"}
	}
	json.NewEncoder(w).Encode(body)
}
