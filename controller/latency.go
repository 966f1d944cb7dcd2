package controller

import (
	"slices"
	"sync"
	"time"
)

// latencies keeps the most recent Mount durations (or event lags) for
// p50/p99 reporting.
// A ring keeps memory flat however long the daemon runs.
type latencies struct {
	mu    sync.Mutex
	ring  [4096]time.Duration
	n     int
	total uint64
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.ring[l.n%len(l.ring)] = d
	l.n++
	l.total++
	l.mu.Unlock()
}

// quantiles returns the p50 and p99 of the kept samples and how many
// Mounts were ever timed.
func (l *latencies) quantiles() (p50, p99 time.Duration, count uint64) {
	l.mu.Lock()
	n := min(l.n, len(l.ring))
	s := slices.Clone(l.ring[:n])
	count = l.total
	l.mu.Unlock()
	if n == 0 {
		return 0, 0, count
	}
	slices.Sort(s)
	return s[(n-1)*50/100], s[(n-1)*99/100], count
}
