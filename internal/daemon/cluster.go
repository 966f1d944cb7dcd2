package daemon

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/secretd/secretd/api/server"
	"github.com/secretd/secretd/controller"
	"github.com/secretd/secretd/errdefs"
	"github.com/secretd/secretd/internal/store"
	etcdstore "github.com/secretd/secretd/internal/store/etcd"
)

// claimsRefresh is how often this host's claims are recomputed from the
// engine: it catches containers created or removed without a mount.
const claimsRefresh = 5 * time.Second

// taskPoll is how often the task table is looked at for a Mount or Unmount
// to publish; reading it costs no engine call.
const taskPoll = 200 * time.Millisecond

// cluster joins this host to the others that share an etcd store: it
// publishes the claims of this host's containers under a lease, and adds
// the other hosts' claims to the in-use checks of `secret rm` and pins.
type cluster struct {
	host   string
	claims *etcdstore.Claims
	ctrl   *controller.Controller
	log    *slog.Logger
}

// newCluster returns nil for a store no other host shares.
func newCluster(b *Backend, hostID string, log *slog.Logger) (*cluster, error) {
	if b.Etcd == nil {
		return nil, nil
	}
	if hostID == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, err
		}
		hostID = h
	}
	claims, err := b.Etcd.Claims(hostID, etcdstore.DefaultClaimsTTL)
	if err != nil {
		return nil, err
	}
	return &cluster{host: hostID, claims: claims, log: log}, nil
}

// apiController is what the API asks the controller.
type apiController interface {
	server.Tasks
	server.Containers
}

// inUse answers the API's in-use questions for every host sharing the
// store, or for this host alone when none does.
func inUse(ctrl *controller.Controller, cl *cluster) apiController {
	if cl == nil {
		return ctrl
	}
	cl.ctrl = ctrl
	return clusterController{Controller: ctrl, cl: cl}
}

// runShared follows the other hosts until ctx ends: their rotations reach
// this host's containers, and this host's claims reach them.
func runShared(ctx context.Context, st *store.Store, cl *cluster, log *slog.Logger) {
	if cl != nil {
		go cl.claims.Run(ctx, func(err error) {
			log.Warn("claims not published to the shared store: retrying", "err", err)
		})
		go cl.publish(ctx)
	}
	st.Watch(ctx, func(err error, retry time.Duration) {
		log.Warn("watch on the shared store broke: watching again", "err", err, "backoff", retry)
	})
}

// publish recomputes this host's claims on a timer, and at once when the
// task table changes (a Mount or an Unmount).
func (cl *cluster) publish(ctx context.Context) {
	refresh := time.NewTicker(claimsRefresh)
	defer refresh.Stop()
	poll := time.NewTicker(taskPoll)
	defer poll.Stop()
	last := ""
	for {
		if err := cl.refresh(ctx); err != nil {
			// The previous claims stay: better to keep a secret in use a
			// while longer than to free one a container needs.
			cl.log.Warn("cannot compute this host's claims: keeping the published ones", "err", err)
		}
		last = mountsKey(cl.ctrl)
		for changed := false; !changed; {
			select {
			case <-ctx.Done():
				return
			case <-refresh.C:
				changed = true
			case <-poll.C:
				changed = mountsKey(cl.ctrl) != last
			}
		}
	}
}

func (cl *cluster) refresh(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	claims, err := cl.ctrl.LocalClaims(rctx)
	if err != nil {
		return err
	}
	entries := make(map[string][]byte, len(claims))
	for _, c := range claims {
		c.Host = cl.host
		v, err := json.Marshal(c)
		if err != nil {
			return err
		}
		entries[c.ContainerID] = v
	}
	cl.claims.Set(entries)
	return nil
}

// mountsKey identifies the task table's content by its mount IDs and
// their secrets.
func mountsKey(ctrl *controller.Controller) string {
	var parts []string
	for _, t := range ctrl.Tasks() {
		p := t.MountID
		for _, s := range t.Secrets {
			p += "," + s.Name
		}
		parts = append(parts, p)
	}
	sort.Strings(parts)
	return strings.Join(parts, ";")
}

// remote returns the claims every other host published.
func (cl *cluster) remote(ctx context.Context, sec store.Secret) ([]controller.Claim, error) {
	all, err := cl.claims.List(ctx)
	if err != nil {
		return nil, errdefs.Errorf(errdefs.ErrUnavailable, "cannot tell whether secret '%s' is in use on other hosts: %v", sec.Name, err)
	}
	var out []controller.Claim
	for host, byKey := range all {
		if host == cl.host {
			continue // this host answers for itself, from the engine
		}
		for _, v := range byKey {
			var c controller.Claim
			if json.Unmarshal(v, &c) != nil {
				continue
			}
			c.Host = host
			out = append(out, c)
		}
	}
	return out, nil
}

// clusterController is the controller with the other hosts' claims added
// to Users and Pins. A container on another host is named HOST/NAME.
type clusterController struct {
	*controller.Controller
	cl *cluster
}

// Users implements server.Tasks.
func (c clusterController) Users(ctx context.Context, sec store.Secret) ([]string, error) {
	var users []string
	err := c.withRemote(ctx, sec, func() (err error) {
		users, err = c.Controller.Users(ctx, sec)
		return err
	}, func(name string, versions []int) {
		if len(versions) > 0 && !slices.Contains(users, name) {
			users = append(users, name)
		}
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(users)
	return users, nil
}

// Pins implements server.Containers.
func (c clusterController) Pins(ctx context.Context, sec store.Secret) (map[int][]string, error) {
	var pins map[int][]string
	err := c.withRemote(ctx, sec, func() (err error) {
		pins, err = c.Controller.Pins(ctx, sec)
		return err
	}, func(name string, versions []int) {
		for _, v := range versions {
			if v != 0 && !slices.Contains(pins[v], name) {
				if pins == nil {
					pins = map[int][]string{}
				}
				pins[v] = append(pins[v], name)
				sort.Strings(pins[v])
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return pins, nil
}

// withRemote runs local, this host's answer, while the claims of the other
// hosts are read, so an in-use answer (asked before every update) waits
// for the slower of the engine and etcd, not for both; then it calls fn
// for every container of another host that claims sec, with its name
// (HOST/NAME) and the versions it uses (0: the current).
func (c clusterController) withRemote(ctx context.Context, sec store.Secret, local func() error, fn func(name string, versions []int)) error {
	var remote []controller.Claim
	var rerr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		remote, rerr = c.cl.remote(ctx, sec)
	}()
	err := local()
	<-done
	if err != nil {
		return err
	}
	if rerr != nil {
		return rerr
	}
	for _, r := range remote {
		fn(r.Host+"/"+r.Name, r.Uses(sec.Kind, sec.Name))
	}
	return nil
}
