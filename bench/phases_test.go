package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/secretd/secretd/secretdtest"
)

// mountPhases is one "secrets mounted" log line split by where its time
// went.
type mountPhases struct {
	byLabel                                bool // declared by the container's label, not the volume's options
	engine                                 bool // the Mount asked the engine for the container
	spare                                  bool // the Mount filled a spare tmpfs
	staged                                 bool // the spare was filled at the container's create
	volume                                 string
	total, resolve, record, decrypt, tmpfs time.Duration
}

var (
	mountedRE = regexp.MustCompile(`msg="secrets mounted" [^\n]*`)
	fieldRE   = regexp.MustCompile(` (\w+)=(\S+)`)
)

// parsePhases reads every Mount's phases from a daemon log; a line that
// lacks a field is skipped, so a log format change shows as missing Mounts.
func parsePhases(log string) []mountPhases {
	var out []mountPhases
	for _, line := range mountedRE.FindAllString(log, -1) {
		f := map[string]string{}
		for _, m := range fieldRE.FindAllStringSubmatch(line, -1) {
			f[m[1]] = m[2]
		}
		p := mountPhases{byLabel: f["declared"] == "label", engine: f["engine_lookup"] == "true", spare: f["spare"] == "true", staged: f["staged"] == "true", volume: f["volume"]}
		ok := f["declared"] == "label" || f["declared"] == "option"
		for name, d := range map[string]*time.Duration{"duration": &p.total, "resolve": &p.resolve, "record": &p.record, "decrypt": &p.decrypt, "tmpfs": &p.tmpfs} {
			v, err := time.ParseDuration(f[name])
			ok = ok && err == nil
			*d = v
		}
		if ok {
			out = append(out, p)
		}
	}
	return out
}

// slowest describes the slowest 1% of Mounts (at least one) by the mean of
// each phase: which step a tail Mount waits on.
func slowest(ps []mountPhases) string {
	if len(ps) == 0 {
		return "no Mount logged"
	}
	ps = slices.Clone(ps)
	slices.SortFunc(ps, func(a, b mountPhases) int { return int(b.total - a.total) })
	n := max(1, len(ps)/100)
	var sum mountPhases
	asked, spares, staged := 0, 0, 0
	for _, p := range ps[:n] {
		if p.engine {
			asked++
		}
		if p.spare {
			spares++
		}
		if p.staged {
			staged++
		}
		sum.total += p.total
		sum.resolve += p.resolve
		sum.record += p.record
		sum.decrypt += p.decrypt
		sum.tmpfs += p.tmpfs
	}
	div := time.Duration(n)
	return fmt.Sprintf("the slowest %d of %d Mounts took %s on average: resolve %s (%d asked the engine to bind their volume), task record %s, decryption %s, tmpfs %s (%d filled a spare, %d of them at the create)",
		n, len(ps), fmtDuration(sum.total/div), fmtDuration(sum.resolve/div), asked,
		fmtDuration(sum.record/div), fmtDuration(sum.decrypt/div), fmtDuration(sum.tmpfs/div), spares, staged)
}

// split returns the Mounts declared by label and those declared in the
// volume's options.
func split(ps []mountPhases) (label, volume []mountPhases) {
	for _, p := range ps {
		if p.byLabel {
			label = append(label, p)
		} else {
			volume = append(volume, p)
		}
	}
	return label, volume
}

// totals are the Mounts' whole durations.
func totals(ps []mountPhases) []time.Duration {
	ds := make([]time.Duration, len(ps))
	for i, p := range ps {
		ds[i] = p.total
	}
	return ds
}

// count is how many Mounts match.
func count(ps []mountPhases, match func(mountPhases) bool) int {
	n := 0
	for _, p := range ps {
		if match(p) {
			n++
		}
	}
	return n
}

func isSpare(p mountPhases) bool  { return p.spare }
func isStaged(p mountPhases) bool { return p.staged }

// lookups tells how many Mounts asked the engine, to bind their volume:
// at most one in a volume's life.
func lookups(ps []mountPhases) string {
	byVolume := map[string]int{}
	asked := 0
	for _, p := range ps {
		if p.engine {
			asked++
			byVolume[p.volume]++
		}
	}
	most := 0
	for _, n := range byVolume {
		most = max(most, n)
	}
	return fmt.Sprintf("%d of %d Mounts asked the engine; at most %d for one volume", asked, len(ps), most)
}

func asked(p mountPhases) bool { return p.engine }

// keepLog copies the daemon's log into $SECRETD_BENCH_LOGS/NAME.log when
// that is set, for reading a run's slowest Mounts line by line afterwards.
func keepLog(tb testing.TB, d *secretdtest.Daemon, name string) {
	dir := os.Getenv("SECRETD_BENCH_LOGS")
	if dir == "" {
		return
	}
	tb.Cleanup(func() {
		if err := os.WriteFile(filepath.Join(dir, name+".log"), []byte(d.Log()), 0o600); err != nil {
			tb.Logf("keep the daemon's log: %v", err)
		}
	})
}
