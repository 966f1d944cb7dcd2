// Package mountroot names what secretd keeps under its mount root, so the
// daemon's start-up check and the controller's resync agree on which
// entries are secretd's own: whatever else is there belongs to someone
// else and is never removed.
package mountroot

import (
	"regexp"
	"strings"
)

// RecordSuffix ends the name of the task record kept beside each mount
// directory (NAME.task beside NAME).
const RecordSuffix = ".task"

// MarkerPrefix starts the names of secretd's own probes and markers.
const MarkerPrefix = ".secretd-"

// ownName matches the names secretd itself gives entries of the mount
// root: dockerd's 64-hex mount IDs, spares, Podman's shared mounts made on
// demand, task records and their temporaries.
var ownName = regexp.MustCompile(`^([0-9a-f]{64}|spare\.[0-9a-f]+|shared\.[0-9a-f]+)(\.task(\.tmp)?)?$`)

// OwnName reports whether name is one secretd gives an entry of the mount
// root by itself (a mount ID, a spare, a task record or its temporary).
func OwnName(name string) bool { return ownName.MatchString(name) }

// Marker reports whether name is one of secretd's probes or markers.
func Marker(name string) bool { return strings.HasPrefix(name, MarkerPrefix) }

// Record reports whether name is a task record or a record's temporary.
func Record(name string) bool {
	return strings.HasSuffix(name, RecordSuffix) || strings.HasSuffix(name, RecordSuffix+".tmp")
}

// MountDir reports whether a directory of the mount root named name is one
// secretd makes for a mount, which a resync may wipe when no container
// uses it: one named for a mount ID or a spare, or any directory with a
// task record beside it (hasRecord), since the engine may give mount IDs
// of other shapes.
func MountDir(name string, hasRecord bool) bool {
	return hasRecord || (ownName.MatchString(name) && !Record(name))
}
