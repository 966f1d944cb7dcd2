package controller

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/secretd/secretd/declaration"
	"github.com/secretd/secretd/internal/store"
)

// Claim is one container's declared use of secrets, as a host publishes it
// for the other hosts sharing its store: `secret rm` on any host is refused
// while a container anywhere claims the secret.
type Claim struct {
	// ContainerID is the container's ID, or mount-MOUNTID (for Podman's
	// shared mounts mount-MOUNTID-VOLUME) for a mount whose container was
	// not known; it is unique among a host's claims.
	ContainerID string       `json:"id"`
	Name        string       `json:"name"`
	Host        string       `json:"host,omitempty"`
	Entries     []ClaimEntry `json:"entries"`
}

// ClaimEntry is one secret (or config) a Claim holds; Version 0 follows
// the current one.
type ClaimEntry struct {
	// Kind is "config" for a config; empty for a secret, as claims from
	// before configs say.
	Kind    string `json:"kind,omitempty"`
	Source  string `json:"source"`
	Version int    `json:"version,omitempty"`
}

// Uses lists the versions of the secret or config kind/name the claim
// holds (0: the current).
func (c Claim) Uses(kind store.Kind, name string) []int {
	var out []int
	want := string(declKind(kind))
	for _, e := range c.Entries {
		if e.Kind == want && e.Source == name && !slices.Contains(out, e.Version) {
			out = append(out, e.Version)
		}
	}
	return out
}

// LocalClaims lists the claims of this host, the same uses Users and Pins
// count: every existing container whose declaration names secrets, running
// or not, and every mount in the task table. An engine that does not answer
// is an error, never an empty list: publishing nothing would free every
// secret this host's containers use.
func (c *Controller) LocalClaims(ctx context.Context) ([]Claim, error) {
	byKey := map[string]*Claim{}
	add := func(key, id, name string, entries []declaration.Entry) {
		cl := byKey[key]
		if cl == nil {
			cl = &Claim{ContainerID: id, Name: name}
			byKey[key] = cl
		}
		for _, e := range entries {
			ce := ClaimEntry{Kind: string(e.Kind), Source: e.Source, Version: e.Version}
			if !slices.Contains(cl.Entries, ce) {
				cl.Entries = append(cl.Entries, ce)
			}
		}
	}
	list, err := c.binding.listAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("list this host's containers: the Docker Engine did not answer: %w", err)
	}
	for _, s := range namedViews(c.tasks.views(), list, c.binding.ourMount) {
		key := s.containerID
		switch {
		case key != "":
		case s.shared:
			// Podman's one mount ID is every volume's.
			key = "mount-" + s.mountID + "-" + s.volume
		default:
			key = "mount-" + s.mountID
		}
		add(key, key, s.label(), s.entries)
	}
	for _, s := range list {
		for _, entries := range c.binding.declarations(s) {
			add(s.ID, s.ID, summaryName(s), entries)
		}
	}
	out := make([]Claim, 0, len(byKey))
	for _, cl := range byKey {
		if len(cl.Entries) == 0 {
			continue
		}
		sort.Slice(cl.Entries, func(i, j int) bool {
			a, b := cl.Entries[i], cl.Entries[j]
			if a.Kind != b.Kind {
				return a.Kind < b.Kind
			}
			return a.Source < b.Source || a.Source == b.Source && a.Version < b.Version
		})
		out = append(out, *cl)
	}
	sort.Slice(out, func(i, j int) bool { return strings.Compare(out[i].ContainerID, out[j].ContainerID) < 0 })
	return out, nil
}
