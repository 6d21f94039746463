#!/usr/bin/env bash
# make bench-fanout (and the end of make bench): one snapshot, many restores at once.
#
# bench/workload (BENCH_FANOUT_SIZE, 16M) is dumped once, normally, in the source network
# namespace (remote.bash); the destination has the scrubbed copy. For each N in
# BENCH_FANOUT ("1 4 16 64") and each server, interleaved, BENCH_FANOUT_REPS (1) times:
#   ours   one `lazy-uffd page-server` on the images serves all N restores
#   criu   N `criu page-server --lazy-pages` on the same images, one port each (a CRIU
#          page server serves one client and exits)
# and N restores start at once, each with its own `lazy-uffd daemon --page-server` (the
# same daemon for both, so only the server differs), its own criu restore --lazy-pages
# and so its own pid namespace (the dumped tree is a pid-namespace init), and its own
# mount namespace in which a private directory is bound over the workload's outfile
# directory (the N copies have one cwd, outfile, --go file and result path). Each
# restored workload gets its start signal as criu restore returns (bench/rusage
# --kill-pidfile), touches its pages in address order while its daemon fills them, and
# checks every page once its daemon has exited.
#
# Per case: aggregate GB/s (N x size over the span from the first restore's start to the
# last daemon's exit), per-restore time to complete (its restore's start to its daemon's
# exit: median and max), and the server side's peak RSS (ours: the one process; criu: the
# sum of the N peaks), CPU (user + system, all server processes) and threads (the most
# seen at once, sampled every 0.2 s: ours' threads; criu: its live processes' threads).
# Pinning: server(s) on CPU 1, the destination (daemons, restores, workloads) on CPU 0.
#
# Environment: BENCH_FANOUT ("1 4 16 64"; "0" skips it in make bench), BENCH_FANOUT_SIZE
# (16M), BENCH_FANOUT_SERVERS ("criu ours"), BENCH_FANOUT_REPS (1), BENCH_FANOUT_DAEMON_ARGS
# (options added to every daemon's: "--busy-poll 0"), BENCH_TIMEOUT (300 s
# for any one wait), BENCH_OUT (build/bench). Exit status 0 when every restore passed its
# byte check; 1 with the case and the reason otherwise (its files stay in
# BENCH_OUT/fanout-run).

set -uo pipefail

BENCH_NAME=bench-fanout
# shellcheck source=lib.bash
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

FRUN=$OUT/fanout-run
CSV=$OUT/fanout.csv
NS=${BENCH_FANOUT:-1 4 16 64}
SIZE=${BENCH_FANOUT_SIZE:-16M}
SERVERS=${BENCH_FANOUT_SERVERS:-criu ours}
REPS=${BENCH_FANOUT_REPS:-1}
TIMEOUT=${BENCH_TIMEOUT:-300}
CPU_SRV=1
CPU_DST=0
CRIU_PORT0=27100

ZDTM_START_TIMEOUT=$TIMEOUT
ZDTM_READY_TIMEOUT=60
ZDTM_VERBOSITY=2

[ "$NS" = 0 ] && exit 0
for w in $NS; do
	if [[ ! $w =~ ^[1-9][0-9]*$ ]] || ((w > 200)); then
		die "BENCH_FANOUT: '$w' is not a number from 1 to 200"
	fi
done
for w in $SERVERS; do
	[[ $w =~ ^(criu|ours)$ ]] || die "BENCH_FANOUT_SERVERS: '$w' is not criu or ours"
done
[[ $SIZE =~ ^[0-9]+[MG]$ ]] || die "BENCH_FANOUT_SIZE: '$SIZE' is not like 16M"
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "BENCH_FANOUT_REPS: '$REPS' is not a positive number"
bench_require bench-fanout workload rusage warm
[ "$(nproc)" -ge 2 ] || CPU_SRV=0

# Every process a case starts, as "pid comm", so that a failure kills them by pid.
PIDS=()
SAMPLER=

kill_case() {
	local p
	[ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null && wait "$SAMPLER" 2>/dev/null
	SAMPLER=
	for p in "${PIDS[@]}"; do
		# shellcheck disable=SC2086 # "pid comm"
		zdtm_kill $p
	done
	PIDS=()
}

on_exit() {
	local rc=$?
	kill_case
	zdtm_kill "${ZDTM_PID:-}" workload
	bench_leave "$rc" "$FRUN" files
}

# wait_for WHAT CMD...: CMD succeeds within TIMEOUT, else the run fails: WHAT after TIMEOUT.
wait_for() {
	local what=$1 i
	shift
	for ((i = 0; i < TIMEOUT * 20; i++)); do
		"$@" && return 0
		sleep 0.05
	done
	die "$what after ${TIMEOUT}s"
}

# wait_file FILE WHAT: FILE exists and is not empty, within TIMEOUT.
wait_file() {
	wait_for "$2: nothing in $1" test -s "$1"
}

# wait_exists FILE WHAT: FILE exists, within TIMEOUT.
wait_exists() {
	wait_for "$2: no $1" test -e "$1"
}

gone() {
	! zdtm_alive "$1"
}

# wait_gone PID WHAT: within TIMEOUT.
wait_gone() {
	wait_for "$2 (pid $1) still runs" gone "$1"
}

# sample PIDFILE OUT: every 0.2 s, the threads and RSS (KiB) summed over the pids listed
# in PIDFILE (one a line; the list grows as servers start), one line per sample.
sample() {
	local list=$1 out=$2
	while :; do
		# shellcheck disable=SC2046 # the pids' status files, one word each
		awk '/^Threads:/ { t += $2 } /^VmRSS:/ { r += $2 } END { print t + 0, r + 0 }' \
			$(sed 's|.*|/proc/&/status|' "$list") 2>/dev/null >>"$out"
		sleep 0.2
	done
}

# serve PREFIX PORT CMD...: the page server CMD on PORT in the source namespace, on
# CPU_SRV, under bench/rusage (PREFIX.times); its output in PREFIX.out, its ready byte in
# PREFIX.ready. Listed in PIDS.
serve() {
	local prefix=$1 port=$2
	shift 2
	rm -f "$prefix.ready"
	nsenter --net=/run/netns/"$ZDTM_NS_SRC" "$BIN/rusage" -o "$prefix.times" -- taskset -c "$CPU_SRV" \
		"$@" -o ps.log -v2 --address "$ZDTM_REMOTE_SRC_IP" --port "$port" --status-fd 9 \
		9>"$prefix.ready" </dev/null >"$prefix.out" 2>&1 &
	PIDS+=("$! rusage")
}

# run_case N SERVER REP: one fan-out; appends its line to the CSV.
run_case() {
	local n=$1 server=$2 rep=$3 tag="N=$1 $2 rep $3" c=$FRUN/case i p port rc
	rm -rf "$c"
	mkdir -p "$c"
	: >"$c/server.pids"
	PIDS=()
	# The server side, in the source namespace, on CPU_SRV.
	local names=() whats=()
	if [ "$server" = ours ]; then
		serve "$c/ps" "$ZDTM_REMOTE_PORT" "$LAZY_UFFD" page-server -D "$ZDTM_SRCIMG" -W "$c"
		names=(ps) whats=("lazy-uffd page-server")
	else
		for ((i = 0; i < n; i++)); do
			mkdir -p "$c/ps$i"
			serve "$c/ps$i" $((CRIU_PORT0 + i)) "$CRIU" page-server --lazy-pages -D "$ZDTM_SRCIMG" -W "$c/ps$i"
			names+=("ps$i") whats+=("criu page-server $i")
		done
	fi
	for ((i = 0; i < ${#names[@]}; i++)); do
		wait_file "$c/${names[i]}.ready" "$tag: ${whats[i]}"
		p=$(ps -o pid= --ppid "${PIDS[i]% *}" | tr -d " ")
		[ -n "$p" ] || die "$tag: no ${whats[i]} under its wrapper"
		echo "$p" >>"$c/server.pids"
	done
	local nsrv=${#PIDS[@]}
	sample "$c/server.pids" "$c/samples" &
	SAMPLER=$!

	# N daemons in the destination's namespace, each with its work dir, all ready first.
	for ((i = 0; i < n; i++)); do
		port=$ZDTM_REMOTE_PORT
		[ "$server" = criu ] && port=$((CRIU_PORT0 + i))
		mkdir -p "$c/w$i" "$c/r$i"
		echo "seq $FRUN/out/result" >"$c/r$i/go"
		# shellcheck disable=SC2086 # BENCH_FANOUT_DAEMON_ARGS: words, as on a command line
		nsenter --net=/run/netns/"$ZDTM_NS_DST" taskset -c "$CPU_DST" "$BIN/rusage" -o "$c/d$i.times" -- \
			"$LAZY_UFFD" daemon -D "$ZDTM_IMG" -W "$c/w$i" -o lazy.log -v2 --status-fd 9 \
			--stats "$c/w$i/stats.json" --page-server --address "$ZDTM_REMOTE_SRC_IP" --port "$port" \
			${BENCH_FANOUT_DAEMON_ARGS:-} \
			9>"$c/w$i.ready" </dev/null >"$c/d$i.out" 2>&1 &
		PIDS+=("$! rusage")
	done
	for ((i = 0; i < n; i++)); do
		wait_file "$c/w$i.ready" "$tag: daemon $i"
	done
	"$BIN/warm" $((n * $(mib "$SIZE") + 64)) || die "$tag: bench-warm"

	# N restores at once, each in a mount namespace of its own where r$i is the outfile's
	# directory.
	local rpids=()
	for ((i = 0; i < n; i++)); do
		# shellcheck disable=SC2016 # the inner shell's own arguments
		unshare -m --propagation private bash -c 'mount --bind "$1" "$2" && shift 2 && exec "$@"' bash \
			"$c/r$i" "$FRUN/out" taskset -c "$CPU_DST" "$BIN/rusage" -o "$c/r$i.times" \
			--kill-pidfile "$c/w$i/restored.pid" -- "$CRIU" restore -d -D "$ZDTM_IMG" -W "$c/w$i" \
			-o restore.log -v2 --pidfile restored.pid --lazy-pages </dev/null >"$c/r$i.out" 2>&1 &
		rpids+=($!)
	done
	for ((i = 0; i < n; i++)); do
		rc=0
		wait "${rpids[i]}" || rc=$?
		[ "$rc" = 0 ] || die "$tag: restore $i exited $rc: $(tail -n 3 "$c/r$i.out" "$c/w$i/restore.log" 2>/dev/null)"
		PIDS+=("$(cat "$c/w$i/restored.pid") workload")
	done
	# The daemons exit once their restore is all there.
	for ((i = 0; i < n; i++)); do
		p=${PIDS[nsrv + i]% *}
		wait_gone "$p" "$tag: daemon $i"
		rc=0
		wait "$p" || rc=$?
		[ "$rc" = 0 ] || die "$tag: daemon $i exited $rc: $(grep Error "$c/w$i/lazy.log" | tail -n 3)"
	done
	# The workloads check every page after their second SIGTERM.
	for ((i = 0; i < n; i++)); do
		p=$(cat "$c/w$i/restored.pid")
		wait_exists "$c/r$i/test.out.settle" "$tag: restored workload $i (its first pass)"
		kill -TERM "$p" || die "$tag: restored workload $i is gone before its check"
	done
	for ((i = 0; i < n; i++)); do
		p=$(cat "$c/w$i/restored.pid")
		wait_gone "$p" "$tag: restored workload $i"
		[ "$(cat "$c/r$i/test.out" 2>/dev/null)" = PASS ] ||
			die "$tag: restore $i: $(cat "$c/r$i/test.out" 2>/dev/null || echo 'no outfile')"
		[ "$(kv "$c/r$i/result" corrupt)" = 0 ] || die "$tag: restore $i: corrupt pages"
	done
	# The server side: ours is stopped (SIGTERM through its wrapper), criu's end by
	# themselves once their client is gone.
	[ "$server" = ours ] && kill -TERM "${PIDS[0]% *}"
	for ((i = 0; i < nsrv; i++)); do
		p=${PIDS[i]% *}
		wait_gone "$p" "$tag: page server $i"
		wait "$p" 2>/dev/null
	done
	kill "$SAMPLER" 2>/dev/null
	wait "$SAMPLER" 2>/dev/null
	SAMPLER=
	PIDS=()

	local line
	line=$(for ((i = 0; i < n; i++)); do
		echo "r $(kv "$c/r$i.times" start_mono) $(kv "$c/d$i.times" end_mono)"
	done
	if [ "$server" = ours ]; then
		echo "s $(kv "$c/ps.times" maxrss_kib) $(kv "$c/ps.times" user_s) $(kv "$c/ps.times" sys_s)"
	else
		for ((i = 0; i < n; i++)); do
			echo "s $(kv "$c/ps$i.times" maxrss_kib) $(kv "$c/ps$i.times" user_s) $(kv "$c/ps$i.times" sys_s)"
		done
	fi
	awk '{ print "t", $1, $2 }' "$c/samples" 2>/dev/null) 
	line=$(awk -v n="$n" -v server="$server" -v rep="$rep" -v mib="$(mib "$SIZE")" '
		$1 == "r" { k++; d[k] = $3 - $2; if (k == 1 || $2 < t0) t0 = $2; if ($3 > t1) t1 = $3 }
		$1 == "s" { rss += $2; cpu += $3 + $4 }
		$1 == "t" { if ($2 > thr) thr = $2 }
		END {
			for (i = 2; i <= k; i++) { v = d[i]; for (j = i - 1; j >= 1 && d[j] > v; j--) d[j + 1] = d[j]; d[j + 1] = v }
			medd = k % 2 ? d[(k + 1) / 2] : (d[k / 2] + d[k / 2 + 1]) / 2
			printf "%d,%s,%d,%.6f,%.4f,%.6f,%.6f,%.1f,%.3f,%d\n", n, server, rep, t1 - t0,
				n * mib * 1048576 / (t1 - t0) / 1e9, medd, d[k], rss / 1024, cpu, thr
		}' <<<"$line")
	echo "$line" >>"$CSV"
	IFS=, read -r _ _ _ span gbs medd maxd rss cpu thr <<<"$line"
	printf 'bench-fanout: N=%-3d %-4s rep %d: %6.2f s for all, %6.3f GB/s aggregate; per restore median %.2f s, max %.2f s; server RSS %s MiB, CPU %s s, threads %s\n' \
		"$n" "$server" "$rep" "$span" "$gbs" "$medd" "$maxd" "$rss" "$cpu" "$thr"
	rm -rf "$c"
}

report() {
	awk -F, '
	function med(key, col,    n, i, j, t, v) {
		n = cnt[key]
		for (i = 1; i <= n; i++) v[i] = val[key, i, col]
		for (i = 2; i <= n; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] + 0 > t + 0; j--) v[j + 1] = v[j]; v[j + 1] = t }
		return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
	}
	NR == 1 { next }
	{
		key = $1 SUBSEP $2
		if (!(key in cnt)) order[++nk] = key
		n = ++cnt[key]
		for (c = 4; c <= 10; c++) val[key, n, c] = $c
	}
	END {
		printf "%4s %-6s %4s %8s %8s %9s %9s %8s %8s %7s\n", "N", "server", "reps", "all", "GB/s", "restore", "restore",
			"RSS", "CPU", "threads"
		printf "%4s %-6s %4s %8s %8s %9s %9s %8s %8s %7s\n", "", "", "", "s", "aggr.", "med s", "max s", "MiB", "s", "max"
		for (k = 1; k <= nk; k++) {
			key = order[k]; split(key, p, SUBSEP)
			for (c = 4; c <= 10; c++) m[key, c] = med(key, c)
			printf "%4d %-6s %4d %8.2f %8.3f %9.2f %9.2f %8.1f %8.2f %7d\n", p[1], p[2], cnt[key], m[key, 4], m[key, 5],
				m[key, 6], m[key, 7], m[key, 8], m[key, 9], m[key, 10]
		}
		hdr = "\nours/criu (aggregate GB/s: above 1 is better for ours; RSS, CPU: below 1):"
		for (k = 1; k <= nk; k++) {
			split(order[k], p, SUBSEP)
			if (p[2] != "ours") continue
			o = p[1] SUBSEP "ours"; c = p[1] SUBSEP "criu"
			if (!(c in cnt)) continue
			if (hdr != "") { print hdr; hdr = "" }
			printf "  N=%-3d GB/s %.2f x, restore median %.2f x, server RSS %.2f x, server CPU %.2f x\n", p[1],
				m[o, 5] / m[c, 5], m[o, 6] / m[c, 6], m[o, 8] / m[c, 8], (m[c, 9] > 0 ? m[o, 9] / m[c, 9] : 0)
		}
	}' "$CSV"
}

trap on_exit EXIT
rm -rf "$FRUN"
mkdir -p "$FRUN/out"
BATS_TEST_TMPDIR=$FRUN
zdtm_setup
zdtm_remote_setup >/dev/null || die "cannot make the network namespaces (ip netns, veth)"
ZDTM_OUT=$FRUN/out/test.out
echo "bench-fanout: criu $CRIU_VERSION; N = $NS restores of one $SIZE dump; servers: $SERVERS; $REPS reps," \
	"interleaved; server(s) on CPU $CPU_SRV, destination on CPU $CPU_DST;" \
	"daemon options: ${BENCH_FANOUT_DAEMON_ARGS:-none}; load $(cut -d' ' -f1-3 /proc/loadavg)"
zdtm_start "$BIN/workload" --size "$SIZE" --go "$FRUN/out/go" --settle || die "the workload did not start"
zdtm_dump || die "criu dump failed"
ZDTM_SRCIMG=$FRUN/img
zdtm_remote_copy || die "the destination's copy of the images"
cat "$FRUN"/img/pages-*.img >/dev/null

echo "n,server,rep,span_s,gbs,restore_median_s,restore_max_s,server_rss_mib,server_cpu_s,server_threads_max" >"$CSV"
t_begin=$(date +%s)
for ((rep = 1; rep <= REPS; rep++)); do
	for n in $NS; do
		for server in $SERVERS; do
			run_case "$n" "$server" "$rep"
		done
	done
done
echo
echo "lazy-uffd bench-fanout: N restores of one $SIZE dump at once, each with its own lazy-uffd daemon;" \
	"server: one lazy-uffd page-server (ours) or one criu page-server --lazy-pages per restore (criu);" \
	"medians over $REPS reps"
report | tee "$OUT/fanout-table.txt"
echo
echo "bench-fanout: every rep in $CSV, this table in $OUT/fanout-table.txt; $(($(date +%s) - t_begin)) s in all"
