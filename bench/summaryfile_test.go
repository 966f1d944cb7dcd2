package bench

import (
	"os"
	"strings"
	"testing"
)

func TestReportGoalKeepsOtherLines(t *testing.T) {
	dir := t.TempDir()
	old := summaryFile
	summaryFile = dir + "/s.md"
	defer func() { summaryFile = old }()
	reportGoal(t, goal{ID: "2", Goal: "cross-host p99 <= 40 ms", Measured: "38 ms", Met: true})
	reportGoal(t, goal{ID: "1a", Goal: "CLI start", Measured: "0.3x", Met: true})
	reportGoal(t, goal{ID: "2", Goal: "cross-host p99 <= 40 ms", Measured: "41 ms | x", Met: false})
	b, _ := os.ReadFile(summaryFile)
	s := string(b)
	if strings.Count(s, "| 2 |") != 1 || !strings.Contains(s, "41 ms / x | **no**") || strings.Index(s, "| 1a |") > strings.Index(s, "| 2 |") {
		t.Fatalf("summary:\n%s", s)
	}
}
