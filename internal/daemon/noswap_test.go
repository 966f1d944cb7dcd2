package daemon

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestNoswapReport(t *testing.T) {
	for _, c := range []struct {
		ok, swap  bool
		err, serr error
		level     slog.Level
		says      string
	}{
		{ok: true, swap: true, level: slog.LevelInfo, says: "use noswap"},
		{ok: false, swap: false, level: slog.LevelInfo, says: "swap is off"},
		{ok: false, swap: true, level: slog.LevelWarn, says: "swap is on: secrets may be written"},
		{ok: false, serr: errors.New("no /proc"), level: slog.LevelWarn, says: "whether swap is on is unknown"},
		{err: errors.New("read-only file system"), level: slog.LevelWarn, says: "cannot tell whether tmpfs supports noswap"},
	} {
		level, msg, _ := noswapReport(c.ok, c.err, c.swap, c.serr)
		if level != c.level || !strings.Contains(msg, c.says) {
			t.Errorf("noswap %v (err %v), swap %v (err %v): %v %q, want %v and %q", c.ok, c.err, c.swap, c.serr, level, msg, c.level, c.says)
		}
	}
}
