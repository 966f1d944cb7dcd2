package controller

import (
	"fmt"
	"path"
	"strings"

	"github.com/docker/docker/api/types/container"

	"github.com/secretd/secretd/declaration"
)

// labelShare returns the part of container s's secretd.secrets and
// secretd.configs labels that goes to its volume named volume, the
// declaration that volume binds to, and its scope (the whole declaration,
// when it is spread over several volumes; see Volume.Scope). One label
// serves every secretd volume of a container: each entry goes to the
// volume whose destination holds its target, a relative target to the one
// at /run/secrets (or to the container's only one), an absolute one to the
// volume mounted at the deepest directory above it, with its target made
// relative to that volume. An entry that no volume of the container holds,
// or a volume the label gives nothing, is an error: the label says
// something other than what the mounts can serve.
func (b *binding) labelShare(s container.Summary, volume string) (share []declaration.Entry, decl, scope string, err error) {
	label, configs := s.Labels[LabelSecrets], s.Labels[LabelConfigs]
	entries, err := declaration.ParseLabels(label, configs)
	if err != nil {
		return nil, "", "", fmt.Errorf("container %s: labels %s, %s: %w", summaryName(s), LabelSecrets, LabelConfigs, err)
	}
	var ours []container.MountPoint
	self := -1
	for _, m := range s.Mounts {
		if b.ourMount(m) {
			if m.Name == volume {
				self = len(ours)
			}
			ours = append(ours, m)
		}
	}
	if self < 0 {
		return nil, "", "", fmt.Errorf("container %s does not mount volume %s", summaryName(s), volume)
	}
	whole := true
	for _, e := range entries {
		i, rel, err := holder(ours, e)
		if err != nil {
			return nil, "", "", fmt.Errorf("container %s: label %s: %w", summaryName(s), LabelSecrets, err)
		}
		if i != self {
			whole = false
			continue
		}
		if rel == "" {
			return nil, "", "", fmt.Errorf("container %s: label %s: target %s is where volume %s is mounted: give the secret a file path inside it", summaryName(s), LabelSecrets, e.Target, volume)
		}
		if rel != e.Target {
			whole = false
		}
		e.Target = rel
		share = append(share, e)
	}
	if len(share) == 0 {
		return nil, "", "", fmt.Errorf("container %s: label %s declares nothing for volume %s at %s: give an entry a target in it (target=%s/NAME), or remove the volume",
			summaryName(s), LabelSecrets, volume, ours[self].Destination, path.Clean(ours[self].Destination))
	}
	// A secrets label that goes whole to one volume is kept as written,
	// as a volume option is.
	decl = label
	if !whole || configs != "" {
		decl = declaration.Format(share)
	}
	if !whole {
		scope = declaration.Format(entries)
	}
	if share, err = declaration.Parse(decl); err != nil {
		return nil, "", "", fmt.Errorf("container %s: label %s, entries for volume %s: %w", summaryName(s), LabelSecrets, volume, err)
	}
	return share, decl, scope, nil
}

// labelText is a container's declaring labels as one text, to tell
// containers that declare alike; "" when it has neither.
func labelText(labels map[string]string) string {
	if c := labels[LabelConfigs]; c != "" {
		return labels[LabelSecrets] + "\n" + LabelConfigs + "=" + c
	}
	return labels[LabelSecrets]
}

// declares reports whether labels declare secrets or configs.
func declares(labels map[string]string) bool {
	_, s := labels[LabelSecrets]
	_, c := labels[LabelConfigs]
	return s || c
}

// holder finds which of a container's secretd mounts holds entry e, and
// e's target relative to it ("" when e's target is the mount point).
func holder(mounts []container.MountPoint, e declaration.Entry) (int, string, error) {
	if !e.Absolute() {
		for i, m := range mounts {
			if path.Clean(m.Destination) == defaultTarget {
				return i, e.Target, nil
			}
		}
		if len(mounts) == 1 {
			return 0, e.Target, nil
		}
		return -1, "", fmt.Errorf("entry for %s has the relative target %s, which goes to the volume at %s, and the container has %d secretd volumes and none there: give the entry an absolute target (target=/DIR/%s) in one of them",
			e.Source, e.Target, defaultTarget, len(mounts), e.Target)
	}
	best, rel := -1, ""
	for i, m := range mounts {
		d := path.Clean(m.Destination)
		r, ok := "", e.Target == d
		if !ok {
			r, ok = strings.CutPrefix(e.Target, strings.TrimSuffix(d, "/")+"/")
		}
		if ok && (best < 0 || len(d) > len(path.Clean(mounts[best].Destination))) {
			best, rel = i, r
		}
	}
	if best < 0 {
		where := ""
		if dir := path.Dir(e.Target); dir != "/" {
			where = "mount one at " + dir + ", "
		}
		return -1, "", fmt.Errorf("entry for %s has the target %s, which no secretd volume of the container holds: %sgive a relative target (a file in %s), or give the file a volume of its own (secretd run --secret src=%s,target=%s)",
			e.Source, e.Target, where, defaultTarget, e.Source, e.Target)
	}
	return best, rel, nil
}
