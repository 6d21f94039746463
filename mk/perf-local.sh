#!/usr/bin/env bash
# Local lazy-restore figures, for tuning (never asserted): dump one process of SIZE MiB
# (cached in BUILD/perf/img-SIZE), then restore it RUNS times and print one line a run.
#
# usage: mk/perf-local.sh BUILD_DIR CRIU_ENV MODE RUNS [DAEMON OPTIONS...]
#   MODE idle       nothing touched until the daemon exits: full population speed
#        seq        every page touched once in address order right after the restore
#        hot        HOT pages (default 16384) of a fixed shuffle touched right after it
#        eager-seq, eager-hot   the same passes after an eager restore, for comparison
#   AFTER=1: the pass starts once the daemon has exited (memory complete), to tell the
#   pass's own cost from what the population running beside it costs it.
#   PIN=1: the restored program on CPU 0, the daemon on CPU 1 (one CPU: no copy thread).
#   PIN=bench: as `make bench` runs ours: the program on CPU 0, the daemon on both with
#   its loop on CPU 1 (--loop-cpu 1 is added), so its copy thread runs on either.
#   WRAP="perf record -g -o F --": words put before the daemon's command (perf, strace).
#   SIZE=MiB (1024), HOT=pages, DAEMON=ours (BUILD/lazy-uffd daemon) or criu (criu
#   lazy-pages; no --stats, so only the wall time). Needs root and `make test-tools`.
#
# A line: wall_ms (criu restore to the daemon's exit), then touchbench's pass figures
# (pass_us, touches that waited: count, median, p99), then from --stats: GB/s, seconds of
# population after the restore finished, faults, the daemon's fault service median/p99,
# peak RSS, polled wakeups, prefetch hits and misses, when the prefetch was done.
#
#   mk/perf-local.sh build build/criu-4.1.env hot 1 --record-profile /tmp/p
#   mk/perf-local.sh build build/criu-4.1.env hot 3 --prefetch-profile /tmp/p
set -euo pipefail

build=$(realpath "${1:?build dir}")
# shellcheck source=/dev/null
. "${2:?criu env file}"
mode=${3:?mode} runs=${4:?runs}
shift 4
size=${SIZE:-1024} hot=${HOT:-16384} daemon=${DAEMON:-ours}
on_prog=() on_daemon=()
case ${PIN:-0} in
1) on_prog=(taskset -c 0) on_daemon=(taskset -c 1) ;;
bench)
	on_prog=(taskset -c 0) on_daemon=(taskset -c "1,0")
	[ "$daemon" = ours ] && set -- --loop-cpu 1 "$@"
	;;
esac
# shellcheck disable=SC2206 # word splitting wanted
on_daemon+=(${WRAP:-})
prog=$build/test/tools/touchbench lazy=$build/lazy-uffd
img=$build/perf/img-$size w=$build/perf/work
pids=()

die() { printf 'perf-local: %s\n' "$*" >&2; exit 1; }
cleanup() {
	local p
	for p in "${pids[@]}"; do
		[ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true
	done
}
trap cleanup EXIT
[ "$(id -u)" = 0 ] || die "needs root (checkpoint/restore)"
[ -x "$prog" ] && [ -x "$lazy" ] || die "build first: make all test-tools"
json() { grep -oE "\"$1\": [0-9.]+" "$w/stats.json" 2>/dev/null | head -n 1 | awk '{ print $2 }'; }
wait_gone() { while kill -0 "$1" 2>/dev/null; do sleep 0.01; done; }

mkdir -p "$w"
case $mode in
*seq) echo seq >"$w/mode" ;;
*hot) echo "hot $hot" >"$w/mode" ;;
*) echo "hot 0" >"$w/mode" ;;
esac
if [ ! -e "$img/done" ]; then
	rm -rf "$img" "$w/pid"
	mkdir -p "$img"
	setsid unshare -p -f setsid "$prog" "$size" "$w/pid" "$w/mode" "$w/out" </dev/null >/dev/null 2>&1 &
	pids+=($!)
	for ((i = 0; i < 1200; i++)); do [ -s "$w/pid" ] && break; sleep 0.05; done
	[ -s "$w/pid" ] || die "touchbench did not start"
	"$CRIU" dump -t "$(cat "$w/pid")" -D "$img" -o dump.log >/dev/null 2>&1 || die "criu dump: see $img/dump.log"
	touch "$img/done"
fi

for ((r = 0; r < runs; r++)); do
	rm -f "$w/out" "$w/stats.json" "$w/ready" "$w/rpid"
	# Warm cache, as make bench: the host evicts page cache unused for a minute, and a
	# prefetch then reads scattered pages from disk (a 1.2 s pass instead of 35 ms).
	cat "$img"/pages-*.img >/dev/null
	# Memory left free for ~2 s goes back to the host and is ~4x slower to touch again
	# (idle population swung between 2.7 and 7 GB/s without this).
	[ -x "$build/bench/warm" ] && "$build/bench/warm" $((size + 64))
	if [[ $mode == eager-* ]]; then
		"${on_prog[@]}" "$CRIU" restore -d -D "$img" -W "$w" -o restore.log --pidfile "$w/rpid" >/dev/null 2>&1 ||
			die "criu restore: see $w/restore.log"
		p=$(cat "$w/rpid")
		pids+=("$p")
		kill -TERM "$p"
		wait_gone "$p"
		echo "eager $(cat "$w/out")"
		continue
	fi
	mkfifo "$w/ready"
	if [ "$daemon" = criu ]; then
		"${on_daemon[@]}" "$CRIU" lazy-pages -D "$img" -W "$w" -o lazy.log --status-fd 3 "$@" 3>"$w/ready" </dev/null >/dev/null 2>&1 &
	else
		"${on_daemon[@]}" "$lazy" daemon -D "$img" -W "$w" -o lazy.log -v4 --status-fd 3 --stats "$w/stats.json" "$@" \
			3>"$w/ready" </dev/null >/dev/null 2>&1 &
	fi
	d=$!
	pids+=("$d")
	head -c1 "$w/ready" >/dev/null
	t0=$(date +%s%N)
	"${on_prog[@]}" "$CRIU" restore -d -D "$img" -W "$w" --lazy-pages -o restore.log --pidfile "$w/rpid" >/dev/null 2>&1 ||
		die "criu restore --lazy-pages: see $w/restore.log"
	p=$(cat "$w/rpid")
	pids+=("$p")
	[ "$mode" = idle ] || [ "${AFTER:-0}" = 1 ] && { wait "$d" || true; t1=$(date +%s%N); }
	kill -TERM "$p"
	drc=0
	wait "$d" || drc=$?
	[ "$mode" = idle ] || t1=$(date +%s%N)
	wait_gone "$p"
	[ "$drc" = 0 ] || die "the daemon exited $drc: see $w/lazy.log"
	echo "wall_ms $(((t1 - t0) / 1000000)) $(cat "$w/out" 2>/dev/null | tr -d '\n') GB/s $(json gbytes_per_second)" \
		"pop_s $(json populate_seconds) faults $(json faults) med_us $(json median) p99_us $(json p99)" \
		"rss_kib $(json daemon_max_rss_kib) polled $(json polled_wakeups) hits $(json hits) misses $(json misses)" \
		"prefetch_done_ms $(json prefetch_done_ms)"
done
