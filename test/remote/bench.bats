#!/usr/bin/env bats
# Remote lazy-restore figures (not part of make check; performance is measured, never
# asserted):  bats test/remote/bench.bats   (CRIU_SERIES via LAZY_UFFD_CRIU_ENV)
#
# Each run restores a 1 GiB anon process (or 256 MiB with faults in random order during
# the background transfer) across two network namespaces (test/zdtm/remote.bash) and
# prints one line to the terminal:
#   BENCH <daemon> <- <source> <tls> <seconds from criu restore to the daemon's exit> <GB/s>
#   [fault latency median/p99 in us, from our daemon's --stats] [first touches: the
#   program's random first-touch pass over its memory, timed by itself]

load ../lib
load ../zdtm/zdtm
load ../zdtm/remote

setup() {
	lu_require_root || return
	lu_require_criu || return
	zdtm_setup
	zdtm_remote_setup
}

teardown() {
	zdtm_teardown
}

# bench MODE DAEMON SIZE [PROGRAM ARGS...]
bench() {
	local mode=$1 daemon=$2 size=$3 t0 t1 lat= src
	shift 3
	case $mode in
	ours | criu) src=lazy-uffd-page-server ;;
	ps) src=criu-page-server ;;
	dump) src=criu-dump ;;
	esac
	zdtm_start anon --size "$size" "$@" --expect-lazy --settle
	zdtm_remote_start_source "$mode"
	zdtm_remote_copy
	t0=$(date +%s.%N)
	zdtm_remote_restore "$daemon"
	if [ -n "${BENCH_FAULTS:-}" ]; then
		# The program checks its memory (faults) while the background transfer runs.
		zdtm_stop
	fi
	zdtm_lazy_wait
	t1=$(date +%s.%N)
	[ "$ZDTM_DRC" = 0 ]
	if [ "$daemon" = ours ]; then
		lat=$(grep -oE '"faults": [0-9]+|"fault_latency_us": \{"median": [0-9.]+, "p99": [0-9.]+|"gbytes_per_second": [0-9.]+' \
			"$ZDTM_STATS" | tr '\n' ' ' | awk -F'[:, ]+' '{ printf "(daemon: %s GB/s after the restore; %s faults, median %s us, p99 %s us)", $9, $2, $5, $7 }')
	fi
	if [ -n "${BENCH_FAULTS:-}" ]; then
		# The program's own clock: its first touch of every page, in random order.
		lat+=" (first touches: $(grep -oE 'took [0-9.]+ s' "$ZDTM_OUT".notes | cut -d' ' -f2) s)"
	fi
	echo "BENCH $daemon <- $src tls=${ZDTM_REMOTE_TLS:-0} ${ZDTM_REMOTE_DAEMON_ARGS[*]} size=$size" \
		"$(awk -v a="$t0" -v b="$t1" -v s="$size" 'BEGIN { n = s + 0; if (s ~ /G$/) n *= 1024;
			printf "%.3f s %.2f GB/s", b - a, n * 1048576 / (b - a) / 1e9 }') $lat" >&3
	[ -n "${BENCH_FAULTS:-}" ] || zdtm_stop
	zdtm_expect_pass
}

@test "bench: ours <- our page server" { bench ours ours 1G; }
@test "bench: criu <- our page server" { bench criu criu 1G; }
@test "bench: ours <- criu page-server" { bench ps ours 1G; }
@test "bench: criu <- criu page-server" { ZDTM_REMOTE_MODE=ps; bench ps criu 1G; }
@test "bench: ours <- criu dump --lazy-pages" { bench dump ours 1G; }
@test "bench tls: ours <- our page server" { ZDTM_REMOTE_TLS=1 bench ours ours 1G; }
@test "bench tls: criu <- our page server" { ZDTM_REMOTE_TLS=1 bench criu criu 1G; }
@test "bench tls: ours <- criu page-server" { ZDTM_REMOTE_TLS=1 bench ps ours 1G; }

# Faults during the background transfer: urgent channel, or one shared connection.
@test "bench faults: 1 GiB, urgent channel" { BENCH_FAULTS=1 bench ours ours 1G --check-order random; }
@test "bench faults: 1 GiB, criu lazy-pages" {
	BENCH_FAULTS=1 ZDTM_LAZY_TIMEOUT=300 ZDTM_STOP_TIMEOUT=300 bench criu criu 1G --check-order random
}
@test "bench faults: urgent channel" { BENCH_FAULTS=1 bench ours ours 256M --check-order random; }
@test "bench faults: one connection, 2 background requests in flight" {
	ZDTM_REMOTE_DAEMON_ARGS=(--ps-single-connection)
	BENCH_FAULTS=1 bench ours ours 256M --check-order random
}
@test "bench faults: one connection, 8 background requests in flight" {
	ZDTM_REMOTE_DAEMON_ARGS=(--ps-single-connection --ps-bulk-depth 8)
	BENCH_FAULTS=1 bench ours ours 256M --check-order random
}
@test "bench faults: criu page-server (one connection), 2 in flight" {
	BENCH_FAULTS=1 bench ps ours 256M --check-order random
}
