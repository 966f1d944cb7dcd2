package controller

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"

	"github.com/docker/docker/api/types/container"

	"github.com/secretd/secretd/internal/atomicfile"
)

// legacyGrants are the live grants and revokes earlier versions kept by
// container ID. A resync moves each onto the container's volume (the one
// at /run/secrets, or its only one) and drops those of removed containers.
type legacyGrants struct {
	path string
	mu   sync.Mutex
	m    map[string]legacyOverride
}

type legacyOverride struct {
	Add    []string `json:"add,omitempty"`
	Remove []string `json:"remove,omitempty"`
}

func loadLegacyGrants(path string) (*legacyGrants, error) {
	l := &legacyGrants{path: path, m: map[string]legacyOverride{}}
	if path == "" {
		return l, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &l.m); err != nil {
		return nil, fmt.Errorf("container overrides file %s is corrupted (%v): the file is left as it is", path, err)
	}
	return l, nil
}

// migrate moves the legacy grants of the listed containers onto their
// volumes in vols; list holds every container the engine knows, ours says
// which mounts are this driver's, rewrite brings a volume's running mounts
// to its record.
func (l *legacyGrants) migrate(list []container.Summary, ours func(container.MountPoint) bool, vols *registry, rewrite func(string) error, log *slog.Logger) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.m) == 0 {
		return
	}
	byID := map[string]container.Summary{}
	for _, s := range list {
		byID[s.ID] = s
	}
	for id, ov := range l.m {
		s, ok := byID[id]
		if !ok {
			delete(l.m, id) // the container is gone, and its grants with it
			continue
		}
		var target string
		var n int
		for _, m := range s.Mounts {
			if !ours(m) {
				continue
			}
			n++
			if m.Destination == defaultTarget || target == "" {
				target = m.Name
			}
		}
		if target == "" {
			delete(l.m, id)
			continue
		}
		v, ok := vols.get(target)
		if !ok || !v.Bound() {
			continue // retried at the next resync, once the volume is bound
		}
		if n > 1 {
			log.Warn("container has several secretd volumes: its earlier grants move to one", "container", summaryName(s), "volume", target)
		}
		_, err := vols.change(target, func(v *Volume, ok bool) (bool, error) {
			for _, g := range ov.Add {
				if !slices.Contains(v.Grants, g) {
					v.Grants = append(v.Grants, g)
				}
			}
			for _, r := range ov.Remove {
				if !slices.Contains(v.Revokes, r) {
					v.Revokes = append(v.Revokes, r)
				}
			}
			return false, nil
		})
		if err != nil {
			log.Warn("earlier grants not moved to the volume", "volume", target, "err", err)
			continue
		}
		delete(l.m, id)
		log.Info("earlier grants moved to the volume", "container", summaryName(s), "volume", target)
		if err := rewrite(target); err != nil {
			log.Warn("moved grants not applied to the running mounts", "volume", target, "err", err)
		}
	}
	if l.path == "" {
		return
	}
	if len(l.m) == 0 {
		os.Remove(l.path)
		return
	}
	if b, err := json.Marshal(l.m); err == nil {
		atomicfile.Write(l.path, b)
	}
}
