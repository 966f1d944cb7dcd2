package controller

import (
	"errors"
	"fmt"
	"time"

	"github.com/secretd/secretd/declaration"
)

// CreateVolume records a volume dockerd creates. A secrets option binds
// the volume to it now, checked for syntax so a typo fails `docker volume
// create`; the secrets themselves are looked up at Mount, because they may
// be created later. A volume without one is bound later, to the label of
// the container created with it.
func (c *Controller) CreateVolume(name string, opts map[string]string) error {
	for k := range opts {
		if k != OptionSecrets {
			return fmt.Errorf("unknown option %q: the only option is %s='NAME[;source=NAME,target=PATH,uid=N,gid=N,mode=0NNN]'", k, OptionSecrets)
		}
	}
	decl, hasDecl := opts[OptionSecrets]
	if hasDecl {
		if _, err := declaration.Parse(decl); err != nil {
			return err
		}
	}
	_, err := c.vols.change(name, func(v *Volume, ok bool) (bool, error) {
		if ok {
			if v.Options[OptionSecrets] == decl {
				return false, nil
			}
			return false, fmt.Errorf("volume %s already exists with other options", name)
		}
		*v = Volume{Name: name, Options: opts, Created: time.Now().UTC()}
		if decl != "" {
			v.Declaration, v.BoundBy = decl, BoundByOption
		}
		return false, nil
	})
	return c.keptInMemory(name, err)
}

// keptInMemory logs rather than fails a record that only could not be
// saved yet.
func (c *Controller) keptInMemory(name string, err error) error {
	var mem errKeptInMemory
	if errors.As(err, &mem) {
		c.cfg.Log.Warn("volume record not saved: kept in memory", "volume", name, "err", mem.err)
		return nil
	}
	return err
}

// RemoveVolume forgets a volume, its declaration and its live grants and
// revokes; dockerd refuses to remove a volume in use.
func (c *Controller) RemoveVolume(name string) error {
	_, err := c.vols.change(name, func(v *Volume, ok bool) (bool, error) { return true, nil })
	return err
}

// Volume returns the record of one volume.
func (c *Controller) Volume(name string) (Volume, bool) { return c.vols.get(name) }

// Volumes returns every volume, sorted by name.
func (c *Controller) Volumes() []Volume { return c.vols.list() }

// ensureVolume returns the record of a volume dockerd uses, creating an
// unbound one when dockerd created it before secretd's state was lost.
func (c *Controller) ensureVolume(name string) (Volume, error) {
	if v, ok := c.vols.get(name); ok {
		return v, nil
	}
	v, err := c.vols.change(name, func(v *Volume, ok bool) (bool, error) {
		if !ok {
			*v = Volume{Name: name, Created: time.Now().UTC()}
		}
		return false, nil
	})
	if err = c.keptInMemory(name, err); err != nil {
		return Volume{}, err
	}
	if v.Name == "" {
		v, _ = c.vols.get(name)
	}
	return v, nil
}
