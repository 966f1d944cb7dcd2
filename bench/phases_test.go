package bench

import (
	"fmt"
	"regexp"
	"slices"
	"time"
)

// mountPhases is one "secrets mounted" log line split by where its time
// went.
type mountPhases struct {
	engine                                 bool // the Mount asked the engine for the container
	total, resolve, record, decrypt, tmpfs time.Duration
}

var phasesRE = regexp.MustCompile(`msg="secrets mounted" [^\n]*? duration=(\S+) engine_lookup=(true|false) resolve=(\S+) record=(\S+) decrypt=(\S+) tmpfs=(\S+)`)

// parsePhases reads every Mount's phases from a daemon log.
func parsePhases(log string) []mountPhases {
	var out []mountPhases
	for _, m := range phasesRE.FindAllStringSubmatch(log, -1) {
		var v [5]time.Duration
		ok := true
		fields := append([]string{m[1]}, m[3:]...)
		for i := range v {
			d, err := time.ParseDuration(fields[i])
			if err != nil {
				ok = false
				break
			}
			v[i] = d
		}
		if ok {
			out = append(out, mountPhases{m[2] == "true", v[0], v[1], v[2], v[3], v[4]})
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
	for _, p := range ps[:n] {
		sum.total += p.total
		sum.resolve += p.resolve
		sum.record += p.record
		sum.decrypt += p.decrypt
		sum.tmpfs += p.tmpfs
	}
	div := time.Duration(n)
	return fmt.Sprintf("the slowest %d of %d Mounts took %s on average: engine lookup %s, task record %s, decryption %s, tmpfs %s",
		n, len(ps), fmtDuration(sum.total/div), fmtDuration(sum.resolve/div), fmtDuration(sum.record/div),
		fmtDuration(sum.decrypt/div), fmtDuration(sum.tmpfs/div))
}

// split returns the Mounts that asked the engine and those that did not.
func split(ps []mountPhases) (asked, not []mountPhases) {
	for _, p := range ps {
		if p.engine {
			asked = append(asked, p)
		} else {
			not = append(not, p)
		}
	}
	return asked, not
}

// totals are the Mounts' whole durations.
func totals(ps []mountPhases) []time.Duration {
	ds := make([]time.Duration, len(ps))
	for i, p := range ps {
		ds[i] = p.total
	}
	return ds
}
