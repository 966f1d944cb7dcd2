package server

import (
	"net/http"
	"runtime"

	"github.com/docker/docker/api/types"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/internal/audit"
)

// ping answers as a Swarm manager would, because the docker CLI hides the
// `secret` commands unless the daemon it talks to says it is one.
func (s *Server) ping(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Swarm", "active/manager")
	h.Set("Docker-Experimental", "false")
	h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	h.Set("Pragma", "no-cache")
	if r.Method == http.MethodHead {
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Content-Length", "0")
		return
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("OK"))
}

func (s *Server) version(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, types.Version{
		Platform:      struct{ Name string }{Name: "secretd"},
		Version:       s.cfg.Version,
		APIVersion:    api.APIVersion,
		MinAPIVersion: api.MinAPIVersion,
		GoVersion:     runtime.Version(),
		Os:            runtime.GOOS,
		Arch:          runtime.GOARCH,
	})
}

func (s *Server) unlock(w http.ResponseWriter, r *http.Request) {
	var req api.UnlockRequest
	if !decode(w, r, &req) {
		return
	}
	if err := s.cfg.Store.Unlock(req.UnlockKey); err != nil {
		s.fail(w, r, err)
		return
	}
	s.cfg.Log.Info("store unlocked")
	s.audit(r, audit.Event{Event: audit.StoreUnlock})
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) unlockKey(w http.ResponseWriter, r *http.Request) {
	key, err := s.cfg.Store.UnlockKey()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// Whoever reads the unlock key can open the store: worth a line.
	s.audit(r, audit.Event{Event: audit.UnlockKeyRead})
	writeJSON(w, http.StatusOK, api.UnlockKeyResponse{UnlockKey: key})
}

func (s *Server) unlockKeyRotate(w http.ResponseWriter, r *http.Request) {
	key, err := s.cfg.Store.RotateUnlockKey()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.cfg.Log.Info("unlock key rotated")
	s.audit(r, audit.Event{Event: audit.UnlockKeyRotate})
	writeJSON(w, http.StatusOK, api.UnlockKeyResponse{UnlockKey: key})
}

func (s *Server) keyRotate(w http.ResponseWriter, r *http.Request) {
	gen, err := s.cfg.Store.RotateKEK(s.cfg.KeyFile)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.cfg.Log.Info("key encryption key rotated", "generation", gen)
	s.audit(r, audit.Event{Event: audit.KeyRotate, Generation: gen})
	writeJSON(w, http.StatusOK, api.KeyRotateResponse{Generation: gen})
}

func (s *Server) tasks(w http.ResponseWriter, r *http.Request) {
	tasks := []api.Task{}
	if s.cfg.Tasks != nil {
		tasks = append(tasks, s.cfg.Tasks.Tasks()...)
	}
	writeJSON(w, http.StatusOK, tasks)
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st := api.Status{
		Version:  s.cfg.Version,
		Locked:   s.cfg.Store.Locked(),
		Autolock: s.cfg.Store.Autolock(),
	}
	list, err := s.cfg.Store.List(storeFilterAll)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	st.Secrets = len(list)
	configs, err := s.configs().List(storeFilterAll)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	st.Configs = len(configs)
	st.Goroutines, st.OpenFDs = runtime.NumGoroutine(), openFDs()
	if s.cfg.Status != nil {
		s.cfg.Status(&st)
	}
	writeJSON(w, http.StatusOK, st)
}
