package controller

import "time"

// Staged counts the volumes staged or being staged, and WaitStaging waits
// for the fills under way: the tests' view of staging.
func (c *Controller) Staged() int {
	c.staging.mu.Lock()
	defer c.staging.mu.Unlock()
	return len(c.staging.byVolume)
}
func (c *Controller) WaitStaging() { c.staging.running.Wait() }

// SetStagedTTL shortens how long a staged fill waits for its Mount.
func (c *Controller) SetStagedTTL(d time.Duration) {
	c.staging.mu.Lock()
	c.staging.ttl = d
	c.staging.mu.Unlock()
}
