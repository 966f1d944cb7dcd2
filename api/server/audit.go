package server

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/secretd/secretd/errdefs"
	"github.com/secretd/secretd/internal/audit"
)

// Metrics hears of failed API requests, by kind; *metrics.Metrics
// implements it.
type Metrics interface {
	// Error counts one failure of op ("api"); a nil err counts nothing.
	Error(op string, err error)
}

type peerKey struct{}

// connContext remembers the credentials of a unix socket peer for the
// audit trail. They are read once, at accept: SO_PEERCRED names the
// process that connected, which is who the requests on that connection
// come from.
func connContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ctx
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return ctx
	}
	return context.WithValue(ctx, peerKey{}, audit.Actor{Cred: true, UID: cred.Uid, GID: cred.Gid, PID: cred.Pid})
}

// actor is who sent r: the subject of its verified TLS client certificate,
// or the unix socket peer; nil when neither is known (tests).
func actor(r *http.Request) *audit.Actor {
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		subj := r.TLS.PeerCertificates[0].Subject
		cn := subj.CommonName
		if cn == "" {
			cn = subj.String()
		}
		return &audit.Actor{CN: cn}
	}
	if a, ok := r.Context().Value(peerKey{}).(audit.Actor); ok {
		return &a
	}
	return nil
}

// actions names, by route, the audited action a request is, so a refusal
// can be recorded without each handler saying what it was.
var actions = map[string]string{
	"POST /secrets/create":                  audit.SecretCreate,
	"POST /secrets/{ref}/update":            audit.SecretLabels,
	"POST /secretd/secrets/{ref}/update":    audit.SecretUpdate,
	"DELETE /secrets/{ref}":                 audit.SecretRemove,
	"POST /configs/create":                  audit.ConfigCreate,
	"POST /configs/{ref}/update":            audit.ConfigLabels,
	"POST /secretd/configs/{ref}/update":    audit.ConfigUpdate,
	"DELETE /configs/{ref}":                 audit.ConfigRemove,
	"POST /secretd/containers/{ref}/update": audit.ContainerUpdate,
	"POST /secretd/unlock":                  audit.StoreUnlock,
	"GET /secretd/unlock-key":               audit.UnlockKeyRead,
	"POST /secretd/unlock-key/rotate":       audit.UnlockKeyRotate,
	"POST /secretd/key/rotate":              audit.KeyRotate,
}

func action(r *http.Request) string {
	a := actions[r.Pattern]
	if strings.Contains(r.PathValue("ref"), "@") {
		switch a {
		case audit.SecretRemove:
			return audit.SecretVersionRemove
		case audit.ConfigRemove:
			return audit.ConfigVersionRemove
		}
	}
	return a
}

// audit records a successful action of r.
func (s *Server) audit(r *http.Request, e audit.Event) {
	if s.cfg.Audit == nil {
		return
	}
	e.Actor = actor(r)
	s.cfg.Audit.Log(e)
}

// observeFailure counts a failed request and records a refusal in the
// trail: a secret in use or pinned, a locked store, a wrong key, a request
// the caller may not make, or any failed unlock.
func (s *Server) observeFailure(r *http.Request, err error) {
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.Error("api", err)
	}
	a := action(r)
	if a == "" || s.cfg.Audit == nil {
		return
	}
	denied := errors.Is(err, errdefs.ErrInUse) || errors.Is(err, errdefs.ErrLocked) || errors.Is(err, errdefs.ErrBadKey) ||
		errors.Is(err, errdefs.ErrForbidden) || a == audit.StoreUnlock
	if !denied {
		return
	}
	e := audit.Event{Secret: r.PathValue("ref")}
	if a == audit.ContainerUpdate {
		e.Secret, e.Container = "", r.PathValue("ref")
	}
	if a == audit.SecretVersionRemove || a == audit.ConfigVersionRemove {
		name, v, _ := strings.Cut(e.Secret, "@")
		e.Secret = name
		e.Version, _ = strconv.Atoi(v)
	}
	if strings.HasPrefix(a, "config.") {
		e.Config, e.Secret = e.Secret, ""
	}
	s.cfg.Audit.Deny(a, actor(r), e, err)
}
