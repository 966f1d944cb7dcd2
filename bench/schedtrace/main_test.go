package main

import (
	"bufio"
	"strings"
	"testing"
)

// A daemon thread preempted on CPU 0 by runc, which holds the CPU 2 ms,
// then woken from a sleep: one runnable wait after the preemption, one
// sleep in D, one runnable wait after the wakeup.
const sample = `  secretd-daemon   100/101   [000]    10.000000:       sched:sched_switch: prev_comm=secretd-daemon prev_pid=101 prev_prio=115 prev_state=R ==> next_comm=runc:[1:CHILD] next_pid=200 next_prio=120
  runc:[1:CHILD]   200/200   [000]    10.002000:       sched:sched_switch: prev_comm=runc:[1:CHILD] prev_pid=200 prev_prio=120 prev_state=R ==> next_comm=secretd-daemon next_pid=101 next_prio=115
  secretd-daemon   100/101   [000]    10.002100:       sched:sched_switch: prev_comm=secretd-daemon prev_pid=101 prev_prio=115 prev_state=D ==> next_comm=swapper/0 next_pid=0 next_prio=120
         swapper     0/0     [001]    10.003100:       sched:sched_wakeup: comm=secretd-daemon pid=101 prio=115 target_cpu=000
         swapper     0/0     [000]    10.003500:       sched:sched_switch: prev_comm=swapper/0 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=secretd-daemon next_pid=101 next_prio=115
`

func TestSchedEvents(t *testing.T) {
	tr := &trace{comm: "secretd-daemon", runs: map[int][]run{}, ins: map[int][]float64{}, kinds: map[string]*kindStat{}}
	if err := tr.schedEvents(bufio.NewScanner(strings.NewReader(sample))); err != nil {
		t.Fatal(err)
	}
	if len(tr.off) != 3 {
		t.Fatalf("got %d off-CPU stretches, want 3: %+v", len(tr.off), tr.off)
	}
	pre, sleep, woken := tr.off[0], tr.off[1], tr.off[2]
	if !pre.runnable || pre.state != "R" || pre.end-pre.start < 0.00199 || pre.cpu != 0 {
		t.Errorf("preempted stretch = %+v, want 2 ms runnable on CPU 0", pre)
	}
	if got := tr.holders(pre); !strings.HasPrefix(got, "runc:[1:CHILD] 2.00 ms") {
		t.Errorf("holders = %q, want runc:[1:CHILD] first with 2.00 ms", got)
	}
	if sleep.runnable || sleep.state != "D" {
		t.Errorf("sleep = %+v, want a D sleep", sleep)
	}
	if !woken.runnable || woken.state != "woken" || woken.end-woken.start < 0.00039 {
		t.Errorf("woken stretch = %+v, want 0.4 ms runnable after its wakeup", woken)
	}
}

func TestKind(t *testing.T) {
	for _, c := range []struct {
		state  string
		frames []string
		want   string
	}{
		{"R", []string{"__schedule", "preempt_schedule_irq", "irqentry_exit_to_user_mode", "asm_sysvec_apic_timer_interrupt"}, "preempted by the tick"},
		{"R+", []string{"__schedule", "irqentry_exit_to_user_mode", "asm_sysvec_reschedule_ipi"}, "preempted by a wakeup (IPI)"},
		{"R", []string{"__schedule", "schedule", "exit_to_user_mode_loop", "do_syscall_64"}, "preempted leaving a system call"},
		{"R", []string{"__schedule", "schedule", "__x64_sys_sched_yield"}, "preempted: sched_yield (Go runtime)"},
		{"D", []string{"__schedule", "schedule", "rwsem_down_write_slowpath", "down_write", "do_lock_mount", "path_mount"}, "D: rwsem_down_write_slowpath < down_write < do_lock_mount"},
		{"S", []string{"__schedule", "schedule", "futex_wait"}, ""},
	} {
		if got := kind(c.state, c.frames); got != c.want {
			t.Errorf("kind(%s, %v) = %q, want %q", c.state, c.frames, got, c.want)
		}
	}
}
