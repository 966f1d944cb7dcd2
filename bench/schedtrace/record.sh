#!/bin/bash
# Records one BenchmarkScale run under perf for schedtrace: every CPU's
# switches and wakeups (sched.data), the kernel stack of every switch-out
# of a daemon thread (stacks.data), the daemon's log (logs/) and the
# offset between the wall clock of the log and perf's monotonic clock.
# perf slows what it watches: compare runs recorded the same way.
#
#   bench/schedtrace/record.sh DIR
#   go run ./bench/schedtrace -dir DIR
set -eu
out=${1:?usage: record.sh DIR}
command -v perf >/dev/null || { echo "record.sh: perf is not installed (apt-get install linux-perf)" >&2; exit 1; }
mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing
mkdir -p "$out/logs"
cd "$(dirname "$0")/../.."
go run ./bench/schedtrace -clock >"$out/offset"
perf record -q -k mono -a -e sched:sched_switch -e sched:sched_wakeup -o "$out/sched.data" 2>"$out/perf.err" &
p1=$!
perf record -q -k mono -a -g -e sched:sched_switch --filter 'prev_comm == "secretd-daemon"' -o "$out/stacks.data" 2>>"$out/perf.err" &
p2=$!
trap 'kill -INT $p1 $p2 2>/dev/null; wait $p1 $p2 || true' EXIT
# The bench writes the summary table; a traced run is not one to keep.
SECRETD_BENCH_SCALE_RUNS=1 SECRETD_BENCH_LOGS="$out/logs" make bench BENCH='^BenchmarkScale$' >"$out/bench.log" 2>&1 ||
	echo "record.sh: the bench failed, see $out/bench.log" >&2
git checkout -q docs/benchmark-summary.md
