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
# perf reads a binary's symbols after the run, and the bench's daemon is
# stripped and deleted by then: the same build without -s -w has the same
# code at the same addresses, and under symfs/ at the daemon's path it
# names the Go frames.
CGO_ENABLED=0 go build -trimpath -o "$out/secretd-daemon.symbols" ./cmd/secretd-daemon
go run ./bench/schedtrace -clock >"$out/offset"
perf record -q -k mono -a -e sched:sched_switch -e sched:sched_wakeup -o "$out/sched.data" 2>"$out/perf.err" &
p1=$!
perf record -q -k mono -a -g -e sched:sched_switch --filter 'prev_comm == "secretd-daemon"' -o "$out/stacks.data" 2>>"$out/perf.err" &
p2=$!
(
	until pid=$(pgrep -x secretd-daemon | head -1) && [ -n "$pid" ]; do sleep 0.2; done
	exe=$(readlink "/proc/$pid/exe") && exe=${exe% (deleted)} &&
		mkdir -p "$out/symfs$(dirname "$exe")" && mv "$out/secretd-daemon.symbols" "$out/symfs$exe"
) &
p3=$!
trap 'kill -INT $p1 $p2 2>/dev/null; kill $p3 2>/dev/null; wait $p1 $p2 || true' EXIT
# The bench writes the summary table; a traced run is not one to keep.
SECRETD_BENCH_SCALE_RUNS=1 SECRETD_BENCH_LOGS="$out/logs" make bench BENCH='^BenchmarkScale$' >"$out/bench.log" 2>&1 ||
	echo "record.sh: the bench failed, see $out/bench.log" >&2
git checkout -q docs/benchmark-summary.md
