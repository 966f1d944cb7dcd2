// Package controller delivers secrets into containers and keeps track of
// them: it keeps the registry of the driver's volumes and their bound
// declarations, serves the volume driver's Mount and Unmount, keeps the
// task table, follows the Docker Engine's event stream and resyncs with the
// engine after any break, wiping mounts that no running container owns.
//
// # Where things are
//
// A file per lifecycle step: mount.go (Mount, seven numbered steps with
// one deferred undo), unmount.go, rotate.go, grants.go (live grants and
// revokes), resync.go, events.go and attribute.go (what events tell),
// shared.go (Podman's mounts, one per volume for all its containers).
// Resync and UpdateContainer decide in pure planners (planResync,
// planGrants) and then carry out the plan.
//
// The Controller is the API of the package; the work is done by a few
// types it holds:
//   - task (task.go), one mount, the only place a task's fields are
//     written (shared.go adds its members), in the taskTable (table.go);
//   - binding (bind.go, share.go, hostnames.go): what the engine says of
//     volumes and containers, with the engine, the volume registry, the
//     image-label cache and the single flight of each volume's binding;
//   - registry (volumes.go, register.go): the volumes and their
//     declarations, on disk;
//   - mountRoot (record.go): the mount root's directories and task
//     records, wipes and clean-ups, with the table, the spares
//     (spares.go) and the spares filled ahead of their Mount (staged.go);
//   - contents (sources.go, templates.go): what a mount holds, from the
//     store or a secret's source, templates rendered;
//   - rotation (rotate.go): one Rotate under way.
//
// # The life of a task
//
// A task is one mount of secrets, found by its volume and mount ID: on
// Docker, one container start's; on Podman, which sends one fixed mount ID
// (PodmanMountID) and mounts a volume once for all its containers, a
// volume's while any of them runs (a shared task, whose containers are its
// members). Its state moves only along these arrows (task.transition
// refuses any other); beside each, who moves it.
//
//	            Mount (driver): claim, the task enters the table
//	                   │
//	                   ▼
//	             ┌──────────┐   a step fails: the one undo     ┌──────┐
//	             │ mounting │─────────────────────────────────▶│ gone │
//	             └────┬─────┘                                  └──────┘
//	                  │ fill (Mount's last step)                  ▲  ▲
//	                  ▼                                           │  │
//	             ┌──────────┐   resync: its tmpfs vanished        │  │
//	adoption ───▶│ mounted  │─────────────────────────────────────┘  │
//	(resync)     └────┬─────┘                                        │
//	                  │ Unmount (driver), a destroy event, or a      │
//	                  │ resync that finds no live owner: wipe        │
//	                  ▼                                              │
//	             ┌────────────┐   wiped                              │
//	             │ unmounting │──────────────────────────────────────┘
//	             └────────────┘
//	               a failed wipe stays here; the next Unmount or
//	               resync tries again
//
// While mounted, a task changes without changing state: a volume mount
// event or a resync gives it its container and where that container
// mounts it (claim), a start event or a resync its name and image
// (identify), a rename event its name, and a rotation or a live grant
// rewrites its files (refresh). Which files a mount holds, and what a
// rotation does to its container (the volume's on-update, bound with its
// declaration), never depend on events: only the names and paths in
// `secretd ps`, the audit trail, which container an on-update action
// reaches and in-use answers do. A one-file volume's mount is never
// rewritten: its container has the file bound, and gets a new version at
// its next start (rotate.go's deferToRestart, resync.go's adoptFile).
// A shared task never has one container: start events (with an inspect)
// and resyncs add its members (join, setMembers), die and destroy events
// take them out (leave), and a resync keeps it while any container of its
// volume is alive.
//
// # Locks
//
// Every lock of the package is a leaf (nothing else is taken while it is
// held) except legacyGrants.mu, held while a resync moves earlier grants
// onto volumes:
//
//	legacyGrants.mu → registry.writing[name] → registry.mu
//	legacyGrants.mu → a task's content step (below) → task.mu
//
// A task's mutex guards its fields only and is never held across I/O. A
// content step (fill, refresh, wipe) marks the task busy instead, does its
// I/O without the mutex, and a second content step waits for it; readers
// (views, claim, identify, rename) never wait for one. A goroutine has at
// most one task busy at a time and waits for no other task while it does.
// A busy task's step may read the store (its key lock, for reading); the
// store runs its OnUpdate hooks, and so Rotate, outside that lock, so a
// rotation waiting for a busy task never holds it. The task table's lock
// guards its map only; spares and staging have their own; the registry's,
// the binder's, the image cache's, the hostnames' and the engine status's
// are leaves.
package controller
