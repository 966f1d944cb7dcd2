package controller

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/secretd/secretd/internal/atomicfile"
	"github.com/secretd/secretd/internal/mountroot"
)

// taskRecord is what secretd writes next to each mount, before filling it:
// which mount ID, volume and container the mount is for. The engine does
// not report a plugin volume's path (Mounts[].Source is empty), so after a
// crash this is the only link from a mount back to its container.
//
// A record is named for its mount's directory, NAME.task beside NAME: a
// directory is named for its mount ID only when it was mounted on demand,
// while a spare gets its name before any container claims it.
type taskRecord struct {
	MountID     string    `json:"mount_id"`
	Volume      string    `json:"volume"`
	ContainerID string    `json:"container_id,omitempty"`
	Since       time.Time `json:"since"`
}

const recordSuffix = mountroot.RecordSuffix

func (c *Controller) recordPath(dirName string) string {
	return filepath.Join(c.cfg.MountRoot, dirName+recordSuffix)
}

// saveRecord writes the record atomically. It does not fsync: a record
// only has to outlive a crash of the process, which the page cache does,
// while a crash of the host takes every mount with it and leaves nothing
// for a record to describe (resync wipes records it cannot read). The
// mount root is normally on tmpfs under /run, where a sync is free, but
// not everywhere, and this is on the Mount path.
func (c *Controller) saveRecord(t taskView) error {
	b, err := json.Marshal(taskRecord{MountID: t.mountID, Volume: t.volume, ContainerID: t.containerID, Since: t.since})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.cfg.MountRoot, 0o700); err != nil {
		return err
	}
	return atomicfile.WriteUnsynced(c.recordPath(dirBase(t.dir)), b)
}

// loadRecord reads the record of the mount at MOUNT-ROOT/dirName. Records
// written before spares existed carry the mount ID that is also their name.
func (c *Controller) loadRecord(dirName string) (*taskRecord, error) {
	b, err := os.ReadFile(c.recordPath(dirName))
	if err != nil {
		return nil, err
	}
	var r taskRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	if !mountIDRE.MatchString(r.MountID) {
		return nil, fmt.Errorf("task record %s names no valid mount ID", dirName)
	}
	return &r, nil
}

// hasRecord reports whether a task record lies beside MOUNT-ROOT/dirName,
// readable or not.
func (c *Controller) hasRecord(dirName string) bool {
	_, err := os.Lstat(c.recordPath(dirName))
	return err == nil
}

func (c *Controller) removeRecord(dirName string) error {
	err := os.Remove(c.recordPath(dirName))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// removeTemps deletes half-written records a crash left behind. Before
// the first resync no Mount can be under way (the plugin socket is not
// served yet), so all go; later a young one may be a Mount's write.
func (c *Controller) removeTemps(all bool) {
	tmps, _ := filepath.Glob(filepath.Join(c.cfg.MountRoot, "*"+recordSuffix+".tmp"))
	for _, t := range tmps {
		if st, err := os.Stat(t); err == nil && (all || time.Since(st.ModTime()) > 10*time.Second) {
			os.Remove(t)
		}
	}
}

// records lists the names of the mount directories that have a record.
func (c *Controller) records() []string {
	entries, _ := os.ReadDir(c.cfg.MountRoot)
	var out []string
	for _, e := range entries {
		if id, ok := strings.CutSuffix(e.Name(), recordSuffix); ok && !e.IsDir() {
			out = append(out, id)
		}
	}
	return out
}
