package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// summaryFile is the table of goals that `make bench` writes and
// docs/benchmarks.md links: every number in it comes from a run, none is
// typed by hand.
var summaryFile = filepath.Join("..", "docs", "benchmark-summary.md")

// A goal is one line of the summary: what the issue asks, what the run
// measured, and whether that meets it.
type goal struct {
	// ID orders the lines and names the goal across runs ("1a", "4").
	ID       string
	Goal     string
	Measured string
	Met      bool
}

var summaryMu sync.Mutex

// reportGoal writes g's line into the summary now, keeping the lines of
// goals this run did not measure (a `-bench=Scale` run leaves the CLI's
// line as the last run that measured it wrote it). Each line carries the
// date and load of the run that measured it, so a busy run shows as one.
func reportGoal(tb testing.TB, g goal) {
	tb.Helper()
	summaryMu.Lock()
	defer summaryMu.Unlock()
	lines := map[string]string{}
	if old, err := os.ReadFile(summaryFile); err == nil {
		for _, l := range strings.Split(string(old), "\n") {
			if id, ok := summaryLineID(l); ok {
				lines[id] = l
			}
		}
	}
	met := "**no**"
	if g.Met {
		met = "yes"
	}
	lines[g.ID] = fmt.Sprintf("| %s | %s | %s | %s | %s |", g.ID, cell(g.Goal), cell(g.Measured), met, runStamp())
	ids := make([]string, 0, len(lines))
	for id := range lines {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var sb strings.Builder
	sb.WriteString("# Benchmark summary\n\n" +
		"Written by `make bench` (`bench/summary_test.go`): one line per goal of the current\n" +
		"performance round, each from the last run that measured it. Do not edit by hand; how each\n" +
		"number is measured is in [benchmarks.md](benchmarks.md).\n\n" +
		"| # | goal | measured | met | run (UTC, cores, load average 1/5/15 min) |\n| --- | --- | --- | --- | --- |\n")
	for _, id := range ids {
		sb.WriteString(lines[id] + "\n")
	}
	if err := os.WriteFile(summaryFile, []byte(sb.String()), 0o644); err != nil {
		tb.Errorf("write the benchmark summary: %v", err)
	}
	tb.Logf("goal %s: %s: %s (met: %s)", g.ID, g.Goal, g.Measured, met)
}

// summaryLineID is the goal ID of a table line of the summary.
func summaryLineID(line string) (string, bool) {
	if !strings.HasPrefix(line, "| ") {
		return "", false
	}
	f := strings.SplitN(line, "|", 3)
	id := strings.TrimSpace(f[1])
	if id == "" || id == "#" || strings.HasPrefix(id, "---") {
		return "", false
	}
	return id, true
}

func cell(s string) string { return strings.ReplaceAll(s, "|", "/") }

func runStamp() string {
	load := "?"
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = strings.Join(strings.Fields(string(la))[:3], " ")
	}
	return fmt.Sprintf("%s, %d cores, load %s", time.Now().UTC().Format("2006-01-02 15:04"), runtime.NumCPU(), load)
}
