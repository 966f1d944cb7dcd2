package controller

import (
	"time"

	"github.com/secretd/secretd/internal/audit"
)

// Metrics hears what the controller does, for Prometheus. The controller
// never labels by secret or container: it passes only fixed op names and
// engine actions. *metrics.Metrics implements it.
type Metrics interface {
	// ObserveMount records one successful Mount and its duration.
	ObserveMount(time.Duration)
	// Rotated counts container mounts rewritten with a new version.
	Rotated(n int)
	// RotationFailed counts container mounts a rotation did not reach.
	RotationFailed(n int)
	// Event counts one engine event handled, by action.
	Event(action string)
	// Resync counts one full resync with the engine.
	Resync()
	// Error counts one failure of op (mount, unmount, rotate, resync,
	// engine); a nil err counts nothing.
	Error(op string, err error)
}

// noMetrics is the Metrics of a controller configured without any.
type noMetrics struct{}

func (noMetrics) ObserveMount(time.Duration) {}
func (noMetrics) Rotated(int)                {}
func (noMetrics) RotationFailed(int)         {}
func (noMetrics) Event(string)               {}
func (noMetrics) Resync()                    {}
func (noMetrics) Error(string, error)        {}

// ActiveMounts counts the mounts in the task table, for the
// secretd_mounts_active gauge.
func (c *Controller) ActiveMounts() int {
	return c.tasks.len()
}

// EngineUp reports whether the last attempt to follow the engine worked.
func (c *Controller) EngineUp() bool {
	return c.engine.up()
}

// auditMount records what a mount delivered, names, versions and
// targets; callers call it once per task (see identify and Unmount).
func auditMount(a *audit.Logger, s taskView) {
	if a == nil {
		return
	}
	e := audit.Event{Event: audit.ContainerMount, Container: s.name, ContainerID: s.containerID, Volume: s.volume, Mount: s.dir}
	for i, en := range s.entries {
		ref := audit.SecretRef{Kind: string(en.Kind), Name: en.Source, Target: en.Target}
		if i < len(s.versions) {
			ref.Version = s.versions[i]
		}
		e.Secrets = append(e.Secrets, ref)
	}
	a.Log(e)
}
