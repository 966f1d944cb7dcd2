package controller

// BirthLookups counts the lookups of new containers under way, so a test
// can wait for what they teach.
func BirthLookups(c *Controller) int {
	c.births.mu.Lock()
	defer c.births.mu.Unlock()
	return len(c.births.pending)
}
