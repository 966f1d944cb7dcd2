package controller

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"time"

	"github.com/secretd/secretd/declaration"
)

// CreateVolume records a volume dockerd creates. A secrets or configs
// option binds the volume to it now, checked for syntax so a typo fails
// `docker volume create`; the secrets and configs themselves are looked up
// at Mount, because they may be created later. A volume without one is
// bound later, to the labels of the container created with it. An
// on-update option is checked and fixed the same way; without one, the
// volume's on-update is learned from the label of the container created
// with it, before its first Mount ends.
func (c *Controller) CreateVolume(name string, opts map[string]string) error {
	for k := range opts {
		switch k {
		case OptionSecrets, OptionConfigs, OptionScope, declaration.OptionFile, OptionOnUpdate:
		default:
			return fmt.Errorf("unknown option %q: the options are %s='NAME[;source=NAME,target=PATH,uid=N,gid=N,mode=0NNN]', %s='...' (configs, the same syntax), %s=TARGET and %s=none|signal:SIGNAME|restart",
				k, OptionSecrets, OptionConfigs, declaration.OptionFile, OptionOnUpdate)
		}
	}
	var onUpdate string
	if opt, ok := opts[OptionOnUpdate]; ok {
		o, err := declaration.ParseOnUpdateOption(opt)
		if err != nil {
			return err
		}
		onUpdate = o.String()
	}
	_, hasSecrets := opts[OptionSecrets]
	_, hasConfigs := opts[OptionConfigs]
	decl := ""
	if hasSecrets || hasConfigs {
		entries, err := declaration.ParseVolume(opts[OptionSecrets], opts[OptionConfigs])
		if err != nil {
			return err
		}
		if err := checkFileOption(entries, opts); err != nil {
			return err
		}
		decl = optionDeclaration(opts)
	} else if _, ok := opts[declaration.OptionFile]; ok {
		return fmt.Errorf("option %s needs a %s or %s option with one entry whose target it names", declaration.OptionFile, OptionSecrets, OptionConfigs)
	}
	if scope, ok := opts[OptionScope]; ok {
		if decl == "" {
			return fmt.Errorf("option %s goes with a %s or %s option", OptionScope, OptionSecrets, OptionConfigs)
		}
		if _, err := declaration.ParseLabel(scope); err != nil {
			return fmt.Errorf("option %s: %w", OptionScope, err)
		}
	}
	_, err := c.vols.change(name, func(v *Volume, ok bool) (bool, error) {
		if ok {
			if maps.Equal(v.Options, opts) || (len(v.Options) == 0 && len(opts) == 0) {
				return false, nil
			}
			return false, fmt.Errorf("volume %s already exists with other options", name)
		}
		*v = Volume{Name: name, Options: opts, Created: time.Now().UTC(), OnUpdate: onUpdate, Format: formatOnUpdate}
		if decl != "" {
			v.Declaration, v.BoundBy, v.Scope = decl, BoundByOption, opts[OptionScope]
		}
		return false, nil
	})
	if err = keptInMemory(c.cfg.Log, name, err); err == nil && decl != "" {
		// dockerd creates a container's volumes, existing ones too, just
		// before the container: its Mount is on the way.
		c.stage(name)
	}
	return err
}

// checkFileOption checks the file option of a one-file volume (an
// absolute target, bind-mounted over one path of the container): it names
// the target of the declaration's only entry, so nothing of the volume is
// hidden.
func checkFileOption(entries []declaration.Entry, opts map[string]string) error {
	file, ok := opts[declaration.OptionFile]
	if !ok {
		return nil
	}
	if len(entries) != 1 || entries[0].Target != file {
		return fmt.Errorf("option %s=%q must name the target of the only entry of %s or %s", declaration.OptionFile, file, OptionSecrets, OptionConfigs)
	}
	return nil
}

// keptInMemory logs rather than fails a record that only could not be
// saved yet.
func keptInMemory(log *slog.Logger, name string, err error) error {
	var mem errKeptInMemory
	if errors.As(err, &mem) {
		log.Warn("volume record not saved: kept in memory", "volume", name, "err", mem.err)
		return nil
	}
	return err
}

// RemoveVolume forgets a volume, its declaration and its live grants and
// revokes; dockerd refuses to remove a volume in use.
func (c *Controller) RemoveVolume(name string) error {
	_, err := c.vols.change(name, func(v *Volume, ok bool) (bool, error) { return true, nil })
	c.staging.drop(name, nil)
	return err
}

// Volume returns the record of one volume.
func (c *Controller) Volume(name string) (Volume, bool) { return c.vols.get(name) }

// Volumes returns every volume, sorted by name.
func (c *Controller) Volumes() []Volume { return c.vols.list() }
