// Command schedtrace says where a slow Mount's time went, from the kernel's
// scheduler: which of the daemon's threads waited for a CPU, who held the
// CPU meanwhile, and what a thread that slept was waiting on. The
// daemon's own log times each Mount by phase; this tells whether a slow
// phase was work, a lock, a disk or a queue for a core.
//
// record.sh, beside it, makes the input: one BenchmarkScale run under perf.
//
//	bench/schedtrace/record.sh /tmp/trace
//	go run ./bench/schedtrace -dir /tmp/trace
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

var (
	eventRE  = regexp.MustCompile(`^\s*(.*?)\s+(\d+)/(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+sched:(\w+):\s+(.*)$`)
	switchRE = regexp.MustCompile(`prev_comm=(.*?) prev_pid=(\d+) prev_prio=-?\d+ prev_state=(\S+) ==> next_comm=(.*?) next_pid=(\d+)`)
	wakeupRE = regexp.MustCompile(`comm=(.*?) pid=(\d+) prio=-?\d+ target_cpu=(\d+)`)
	stackRE  = regexp.MustCompile(`\s([\d.]+): sched:sched_switch: .*prev_pid=(\d+) prev_prio=-?\d+ prev_state=(\S+)`)
	mountRE  = regexp.MustCompile(`^time=(\S+) .*msg="secrets mounted" .*duration=(\S+) declared=(\S+) .*resolve=(\S+) record=(\S+) decrypt=(\S+) tmpfs=(\S+)`)
)

// run is one task's stretch on a CPU.
type run struct {
	start, end float64
	comm       string
}

// offCPU is one stretch a daemon thread spent off its CPU: waiting for one
// (runnable) or asleep.
type offCPU struct {
	tid        int
	start, end float64
	runnable   bool
	state      string // how it left the CPU (R, S, D...), or "woken"
	cpu        int    // where it waited, for a runnable wait
}

type trace struct {
	comm  string
	runs  map[int][]run     // by CPU
	off   []offCPU          // by start
	ins   map[int][]float64 // a daemon thread's switch-ins
	kinds map[string]*kindStat
}

type kindStat struct {
	n, over1ms int
	total      float64
	where      map[string]float64 // off-CPU time by the daemon's own frames
}

func main() {
	dir := flag.String("dir", "", "directory record.sh wrote")
	comm := flag.String("comm", "secretd-daemon", "the daemon's thread name")
	slow := flag.Duration("slow", 2*time.Millisecond, "report Mounts at least this long")
	clock := flag.Bool("clock", false, "print the wall clock minus the monotonic clock, in seconds (record.sh keeps it)")
	flag.Parse()
	if *clock {
		var mono unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono); err != nil {
			fmt.Fprintln(os.Stderr, "schedtrace:", err)
			os.Exit(1)
		}
		fmt.Printf("%.6f\n", float64(time.Now().UnixNano())/1e9-float64(mono.Nano())/1e9)
		return
	}
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "usage: schedtrace -dir DIR (made by record.sh)")
		os.Exit(2)
	}
	if err := report(os.Stdout, *dir, *comm, *slow); err != nil {
		fmt.Fprintln(os.Stderr, "schedtrace:", err)
		os.Exit(1)
	}
}

func report(w io.Writer, dir, comm string, slow time.Duration) error {
	b, err := os.ReadFile(filepath.Join(dir, "offset"))
	if err != nil {
		return err
	}
	// perf stamps events with CLOCK_MONOTONIC, the log with the wall clock.
	offset, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
	if err != nil {
		return fmt.Errorf("offset: %w", err)
	}
	t := &trace{comm: comm, runs: map[int][]run{}, ins: map[int][]float64{}, kinds: map[string]*kindStat{}}
	if err := perfScript(filepath.Join(dir, "sched.data"), []string{"-F", "comm,pid,tid,cpu,time,event,trace"}, t.schedEvents); err != nil {
		return err
	}
	// Without the stacks, the waits are still told apart from the work.
	if stacks := filepath.Join(dir, "stacks.data"); fileExists(stacks) {
		var args []string
		if symfs := filepath.Join(dir, "symfs"); fileExists(symfs) {
			args = []string{"--symfs", symfs, "--kallsyms", "/proc/kallsyms"}
		}
		if err := perfScript(stacks, args, t.stacks); err != nil {
			return err
		}
	}
	t.printKinds(w)
	logs, _ := filepath.Glob(filepath.Join(dir, "logs", "*.log"))
	for _, l := range logs {
		if err := t.printSlowMounts(w, l, offset, slow); err != nil {
			return err
		}
	}
	return nil
}

// perfScript streams `perf script` of one recording, line by line.
func perfScript(data string, args []string, each func(sc *bufio.Scanner) error) error {
	cmd := exec.Command("perf", append([]string{"script", "-i", data}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		return err
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	perr := each(sc)
	io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("perf script -i %s: %w", data, err)
	}
	return perr
}

// schedEvents follows every CPU's switches, and the daemon's threads
// through their states: running, runnable (preempted, or woken) and asleep.
func (t *trace) schedEvents(sc *bufio.Scanner) error {
	type state struct {
		since    float64
		runnable bool
		how      string
		cpu      int
		known    bool
	}
	states := map[int]*state{}
	cur := map[int]run{}
	for sc.Scan() {
		m := eventRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		cpu, _ := strconv.Atoi(m[4])
		ts, _ := strconv.ParseFloat(m[5], 64)
		switch m[6] {
		case "sched_switch":
			s := switchRE.FindStringSubmatch(m[7])
			if s == nil {
				continue
			}
			if r, ok := cur[cpu]; ok {
				r.end = ts
				t.runs[cpu] = append(t.runs[cpu], r)
			}
			cur[cpu] = run{start: ts, comm: s[4]}
			prev, _ := strconv.Atoi(s[2])
			next, _ := strconv.Atoi(s[5])
			if s[1] == t.comm {
				states[prev] = &state{since: ts, runnable: strings.HasPrefix(s[3], "R"), how: s[3], cpu: cpu, known: true}
			}
			if s[4] == t.comm {
				if st := states[next]; st != nil && st.known {
					t.off = append(t.off, offCPU{tid: next, start: st.since, end: ts, runnable: st.runnable, state: st.how, cpu: st.cpu})
				}
				t.ins[next] = append(t.ins[next], ts)
				states[next] = &state{}
			}
		case "sched_wakeup":
			s := wakeupRE.FindStringSubmatch(m[7])
			if s == nil || s[1] != t.comm {
				continue
			}
			tid, _ := strconv.Atoi(s[2])
			target, _ := strconv.Atoi(s[3])
			if st := states[tid]; st != nil && st.known && !st.runnable {
				t.off = append(t.off, offCPU{tid: tid, start: st.since, end: ts, state: st.how})
			}
			states[tid] = &state{since: ts, runnable: true, how: "woken", cpu: target, known: true}
		}
	}
	// By start, for printSlowMounts to stop at the first past a window.
	sort.Slice(t.off, func(i, j int) bool { return t.off[i].start < t.off[j].start })
	return sc.Err()
}

// stacks classifies every switch-out of a daemon thread by its kernel
// stack: preempted (by the tick, by a wakeup's IPI, on the way out of a
// system call, by its own sched_yield) or asleep in D on a named wait.
func (t *trace) stacks(sc *bufio.Scanner) error {
	var ts float64
	var tid int
	var st string
	var frames, user []string
	flush := func() {
		if st == "" {
			return
		}
		defer func() { st, frames, user = "", nil, nil }()
		ins := t.ins[tid]
		i := sort.SearchFloat64s(ins, ts)
		for i < len(ins) && ins[i] <= ts {
			i++
		}
		if i == len(ins) {
			return
		}
		k := kind(st, frames)
		if k == "" {
			return
		}
		ks := t.kinds[k]
		if ks == nil {
			ks = &kindStat{}
			t.kinds[k] = ks
		}
		off := ins[i] - ts
		if at := goFrames(user); at != "" {
			if ks.where == nil {
				ks.where = map[string]float64{}
			}
			ks.where[at] += off
		}
		ks.n++
		ks.total += off
		if off > 0.001 {
			ks.over1ms++
		}
	}
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		if !strings.HasPrefix(line, "\t") {
			flush()
			if m := stackRE.FindStringSubmatch(line); m != nil {
				ts, _ = strconv.ParseFloat(m[1], 64)
				tid, _ = strconv.Atoi(m[2])
				st = m[3]
			}
			continue
		}
		if f := strings.Fields(line); len(f) >= 2 {
			fn := f[1]
			if i := strings.Index(fn, "+0x"); i > 0 {
				fn = fn[:i]
			}
			if strings.HasSuffix(line, "([kernel.kallsyms])") {
				frames = append(frames, fn)
			} else {
				user = append(user, fn)
			}
		}
	}
	flush()
	return sc.Err()
}

func kind(state string, frames []string) string {
	has := func(s string) bool {
		return slices.ContainsFunc(frames, func(f string) bool { return strings.Contains(f, s) })
	}
	switch {
	case strings.HasPrefix(state, "R"):
		switch {
		case has("apic_timer_interrupt"):
			return "preempted by the tick"
		case has("reschedule_ipi"):
			return "preempted by a wakeup (IPI)"
		case has("sched_yield"):
			return "preempted: sched_yield (Go runtime)"
		case len(frames) > 2 && slices.ContainsFunc(frames[:3], func(f string) bool { return strings.Contains(f, "exit_to_user_mode") }):
			return "preempted leaving a system call"
		}
		return "preempted"
	case strings.HasPrefix(state, "D"):
		var k []string
		for _, f := range frames {
			if strings.HasPrefix(f, "__schedule") || f == "schedule" || strings.HasPrefix(f, "[unknown]") || strings.HasPrefix(f, "io_schedule") {
				continue
			}
			k = append(k, f)
			if len(k) == 3 {
				break
			}
		}
		return "D: " + strings.Join(k, " < ")
	}
	return "" // S: waiting for work, a futex, the network
}

func (t *trace) printKinds(w io.Writer) {
	type row struct {
		k string
		s *kindStat
	}
	var rows []row
	for k, s := range t.kinds {
		rows = append(rows, row{k, s})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].s.total > rows[j].s.total })
	fmt.Fprintf(w, "Off-CPU time of %s threads, by why each left the CPU (sleeps in S not counted):\n", t.comm)
	fmt.Fprintf(w, "  %-72s %8s %10s %9s\n", "why", "times", "total ms", "over 1 ms")
	for i, r := range rows {
		if i == 15 {
			break
		}
		fmt.Fprintf(w, "  %-72.72s %8d %10.1f %9d\n", r.k, r.s.n, r.s.total*1e3, r.s.over1ms)
		for _, at := range top(r.s.where, 3) {
			fmt.Fprintf(w, "      %.1f ms at %s\n", r.s.where[at]*1e3, at)
		}
	}
	var waits, over int
	var total float64
	for _, o := range t.off {
		if o.runnable {
			waits++
			total += o.end - o.start
			if o.end-o.start > 0.001 {
				over++
			}
		}
	}
	fmt.Fprintf(w, "Runnable, waiting for a CPU: %d times, %.1f ms in all, %d of them over 1 ms\n\n", waits, total*1e3, over)
}

// printSlowMounts lists, for each slow Mount of one daemon log, the daemon
// threads' waits that overlap it: a runnable wait with the task that held
// that CPU longest meanwhile, or a sleep.
func (t *trace) printSlowMounts(w io.Writer, log string, offset float64, slow time.Duration) error {
	f, err := os.Open(log)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	fmt.Fprintf(w, "Mounts of %s or more in %s:\n", slow, filepath.Base(log))
	for sc.Scan() {
		m := mountRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		end, err1 := time.Parse(time.RFC3339Nano, m[1])
		d, err2 := time.ParseDuration(m[2])
		if err1 != nil || err2 != nil || d < slow {
			continue
		}
		// The log's clock has millisecond precision: widen the window by it.
		hi := float64(end.UnixNano())/1e9 - offset + 0.001
		lo := hi - d.Seconds() - 0.002
		fmt.Fprintf(w, "  %s by %s: resolve %s, record %s, decrypt %s, tmpfs %s\n", m[2], m[3], m[4], m[5], m[6], m[7])
		for _, o := range t.off {
			if o.start > hi {
				break
			}
			if o.end < lo || o.end-o.start < 0.0003 {
				continue
			}
			switch {
			case o.runnable:
				why := "woken"
				if o.state != "woken" {
					why = "preempted"
				}
				fmt.Fprintf(w, "    tid %d %s, waited %.2f ms for CPU %d, which ran %s\n", o.tid, why, (o.end-o.start)*1e3, o.cpu, t.holders(o))
			case strings.HasPrefix(o.state, "D"):
				fmt.Fprintf(w, "    tid %d in D for %.2f ms\n", o.tid, (o.end-o.start)*1e3)
			}
		}
	}
	return sc.Err()
}

// holders says which tasks held the CPU a runnable wait queued on, for
// how long in all, the three longest.
func (t *trace) holders(o offCPU) string {
	runs := t.runs[o.cpu]
	by := map[string]float64{}
	for i := sort.Search(len(runs), func(i int) bool { return runs[i].end > o.start }); i < len(runs) && runs[i].start < o.end; i++ {
		by[runs[i].comm] += min(runs[i].end, o.end) - max(runs[i].start, o.start)
	}
	names := make([]string, 0, len(by))
	for n := range by {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return by[names[i]] > by[names[j]] })
	var parts []string
	for _, n := range names[:min(3, len(names))] {
		parts = append(parts, fmt.Sprintf("%s %.2f ms", n, by[n]*1e3))
	}
	return strings.Join(parts, ", ")
}

// goFrames names where in the daemon a thread left its CPU: its first
// user frames outside the syscall plumbing, when perf could read the
// binary's symbols (the bench's binary is stripped: see record.sh).
func goFrames(frames []string) string {
	var at []string
	for _, f := range frames {
		if strings.HasPrefix(f, "[") || strings.HasPrefix(f, "syscall.") || strings.HasPrefix(f, "internal/runtime/syscall") ||
			strings.HasPrefix(f, "golang.org/x/sys") || strings.HasPrefix(f, "runtime/internal/syscall") {
			continue
		}
		at = append(at, strings.TrimPrefix(f, "github.com/secretd/secretd/"))
		if len(at) == 3 {
			break
		}
	}
	return strings.Join(at, " < ")
}

// top is the n keys with the largest values.
func top(m map[string]float64, n int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] })
	return keys[:min(n, len(keys))]
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
