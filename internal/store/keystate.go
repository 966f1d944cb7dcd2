package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/secretd/secretd/internal/atomicfile"
)

// A store from before record MACs is trusted once: at its first open, every
// record gets a MAC. Someone who can write the backend and kept an old key
// record could write it back, with records stripped of their MAC and
// edited, and have the next open bless them; or write back a key record of
// the format that did not bind its mode, generation and epoch, and edit
// those. So each host keeps, in its own data root, the newest key record
// format it has opened the store in, and refuses anything older: the
// migration happens once per host.

// keyState is the newest key record format this host has seen, kept in a
// file of its own data root (never in the shared store it guards).
type keyState struct {
	path string

	mu     sync.Mutex
	format int
}

// keyStateFile is the content of Config.KeyStateFile.
type keyStateFile struct {
	// Format is the newest key record format this host opened the store in.
	Format int `json:"key_record_format"`
}

func loadKeyState(path string) (*keyState, error) {
	k := &keyState{path: path}
	if path == "" {
		return k, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return k, nil
	}
	if err != nil {
		return nil, fmt.Errorf("key record state: %w", err)
	}
	var f keyStateFile
	if err := json.Unmarshal(b, &f); err != nil || f.Format < kekFormatV1 || f.Format > kekFormat {
		return nil, fmt.Errorf("key record state %s is not what secretd wrote (%s): restore it, or remove it only if the store's key record is known to be good", path, b)
	}
	k.format = f.Format
	return k, nil
}

// check refuses a key record of a format older than this host has seen. A
// nil keyState (a Store not made by Open) has seen none.
func (k *keyState) check(format int) error {
	if k == nil {
		return nil
	}
	k.mu.Lock()
	seen := k.format
	k.mu.Unlock()
	switch {
	case format >= seen:
		return nil
	case format == kekFormatV1:
		return Errorf(ErrCorrupt, "the store's key record is from before record MACs, but this host has already opened the store with them (%s): an old key record was written back to the store; restore the key record from a backup (secretd migrates a store only once)", k.path)
	default:
		return Errorf(ErrCorrupt, "the store's key record is of an older format (%d) than this host has already opened the store in (%d, %s): an old key record was written back to the store; restore the key record from a backup", format, seen, k.path)
	}
}

// raise records that this host has opened the store in format.
func (k *keyState) raise(format int) error {
	if k == nil {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if format <= k.format {
		return nil
	}
	if k.path != "" {
		b, err := json.Marshal(keyStateFile{Format: format})
		if err != nil {
			return err
		}
		if err := atomicfile.Write(k.path, b); err != nil {
			return fmt.Errorf("save key record state: %w", err)
		}
	}
	k.format = format
	return nil
}
