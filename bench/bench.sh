#!/usr/bin/env bash
# make bench: eager `criu restore`, `criu lazy-pages` and `lazy-uffd daemon`, local and
# remote, side by side in one run (README.md, "Benchmarks", says what each column means).
#
# For each size, bench/workload (a zdtm program) fills its memory with the per-page
# pattern and is dumped once; a scrubbed copy of the images is the remote destination's.
# Then, BENCH_REPS times, every pattern and every configuration is restored from those
# images in turn (interleaved, so a drift of the machine hits all alike):
#   eager        criu restore
#   criu-local   criu lazy-pages -D images, criu restore --lazy-pages
#   ours-local   lazy-uffd daemon -D images, criu restore --lazy-pages
#   ours-profile the same with --prefetch-profile (pattern hot only): the profile is
#                recorded once per size (--record-profile, an unmeasured restore of
#                the same pattern) and cut to its first hot-set-size records, the
#                working set, as a snapshot platform would record it
#   criu-remote  criu page-server --lazy-pages on the images in the source network
#                namespace; criu lazy-pages --page-server in the destination's
#   ours-remote  lazy-uffd page-server on the images in the source namespace;
#                lazy-uffd daemon --page-server in the destination's
#   criu-migrate the migration source: a fresh workload (setsid unshare -p -f setsid, as
#                zdtm_start does) in the source namespace, `criu dump --lazy-pages
#                --port`, which serves its pages from the frozen tree; criu lazy-pages
#                --page-server in the destination's
#   ours-migrate the same source; lazy-uffd daemon --page-server in the destination's
#   pull-migrate the same source, no restore: bench/pull fetches every lazy page in the
#                destination's namespace and throws it away (once a rep, whatever the
#                pattern: its row says "-"): how fast the dump side hands out the
#                memory at all, the floor under a migration's population
# using test/zdtm/zdtm.bash and remote.bash (two network namespaces joined by veth).
#
# "Right after restore": criu restore runs under bench/rusage --kill-pidfile, which
# reaps it and at once sends SIGTERM to the restored root named by criu's --pidfile;
# the workload starts its first-touch pass on that signal (go_delay_us in the CSV is
# the gap, from the workload's own clock).
#
# Environment: BENCH_SIZES ("256M 1G", "256M 1G 4G" with BENCH_BIG=1), BENCH_PATTERNS
# ("seq random hot"), BENCH_CONFIGS (all nine), BENCH_REPS (3), BENCH_SLOW (60: a case
# whose first rep took longer than this many seconds is not repeated), BENCH_TIMEOUT
# (900: seconds any one step may take; a first-touch pass still running then is given up
# and listed below the table, any other step that long counts as broken), BENCH_OUT
# (build/bench), BENCH_WORKLOAD_ARGS (more workload options: "--selftest-corrupt flip:77"
# shows that a wrong page fails the run), BENCH_OURS_ARGS (options added to our daemon's
# in ours-local, ours-profile and ours-remote runs: "--busy-poll 0"), BENCH_PULL_ARGS
# (bench/pull's in pull-migrate: "--depth 8 --pages 512"), BENCH_PULL_CPUS (the CPUs
# bench/pull runs on: the daemon's and the workload's). Set by make: LAZY_UFFD_BUILD,
# LAZY_UFFD_CRIU_ENV.
#
# Exit status 0 when every run restored and every page was right, however slow; 1 with
# the case and the reason otherwise (its files stay in BENCH_OUT/run).

set -uo pipefail

BENCH_NAME=bench
# shellcheck source=lib.bash
. "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

RUN=$OUT/run
CSV=$OUT/results.csv
SUMMARY=$OUT/summary.csv
GAVE_UP=$OUT/gave-up.txt

if [ "${BENCH_BIG:-0}" = 1 ]; then
	SIZES=${BENCH_SIZES:-256M 1G 4G}
else
	SIZES=${BENCH_SIZES:-256M 1G}
fi
PATTERNS=${BENCH_PATTERNS:-seq random hot}
CONFIGS=${BENCH_CONFIGS:-eager criu-local ours-local ours-profile criu-remote ours-remote criu-migrate ours-migrate pull-migrate}
REPS=${BENCH_REPS:-3}
SLOW=${BENCH_SLOW:-60}
TIMEOUT=${BENCH_TIMEOUT:-900}

# A slow figure is a result, not a failure: the zdtm bounds become BENCH_TIMEOUT.
ZDTM_START_TIMEOUT=$TIMEOUT
ZDTM_STOP_TIMEOUT=$TIMEOUT
ZDTM_LAZY_TIMEOUT=$TIMEOUT
ZDTM_REMOTE_TIMEOUT=$TIMEOUT
ZDTM_READY_TIMEOUT=60
# Debug logging of every fault would be part of what is measured: warnings and errors
# only (the checks look for Error lines).
ZDTM_VERBOSITY=2

CPU_WORK=0
CPU_DAEMON=1

usage_check() {
	local w
	for w in $PATTERNS; do
		[[ $w =~ ^(seq|random|hot)$ ]] || die "BENCH_PATTERNS: '$w' is not seq, random or hot"
	done
	for w in $CONFIGS; do
		[[ $w =~ ^(eager|criu-local|ours-local|ours-profile|criu-remote|ours-remote|criu-migrate|ours-migrate|pull-migrate)$ ]] ||
			die "BENCH_CONFIGS: '$w' is not eager, criu-local, ours-local, ours-profile, criu-remote, ours-remote, criu-migrate, ours-migrate or pull-migrate"
	done
	for w in $SIZES; do
		[[ $w =~ ^[0-9]+[MG]$ ]] || die "BENCH_SIZES: '$w' is not like 256M or 1G"
	done
	[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPS: '$REPS' is not a positive number"
}

# json FILE KEY: the first numeric value of "KEY": in FILE.
json() {
	grep -oE "\"$2\": *[0-9.]+" "$1" 2>/dev/null | head -n 1 | grep -oE '[0-9.]+$'
}

# on_exit: our processes go (by pid), and the namespaces; a failed run's logs and images
# stay for a look.
on_exit() {
	local rc=$? comm=${ZDTM_PROG:-}
	comm=${comm##*/}
	zdtm_kill "${ZDTM_RPID:-}" "$comm"
	zdtm_kill "${ZDTM_PID:-}" "$comm"
	[ -n "${ZDTM_DPID:-}" ] && zdtm_kill "$ZDTM_DPID" "$(zdtm_daemon_comm)"
	bench_leave "$rc" "$RUN" "logs and images"
}

# setup_size SIZE: start the workload, dump it, make the destination's scrubbed copy.
setup_size() {
	local size=$1 t0 t1
	BATS_TEST_TMPDIR=$RUN/$size
	mkdir -p "$BATS_TEST_TMPDIR"
	local keep_src=("${ZDTM_SRC_NS[@]}") keep_dst=("${ZDTM_DST_NS[@]}")
	zdtm_setup
	ZDTM_SRC_NS=("${keep_src[@]}")
	ZDTM_DST_NS=("${keep_dst[@]}")
	GO=$ZDTM_DIR/go
	PROFILE=$ZDTM_DIR/hot.prof
	echo "bench: $size: starting the workload and dumping it"
	# shellcheck disable=SC2086 # BENCH_WORKLOAD_ARGS: words, for the checker's self-test
	zdtm_start "$BIN/workload" --size "$size" --go "$GO" --cpu "$CPU_WORK" --settle ${BENCH_WORKLOAD_ARGS:-} ||
		die "$size: the workload did not start"
	t0=$(date +%s.%N)
	zdtm_dump || die "$size: criu dump failed"
	t1=$(date +%s.%N)
	ZDTM_SRCIMG=$ZDTM_DIR/img
	zdtm_remote_copy || die "$size: the destination's copy of the images"
	ZDTM_IMG=$ZDTM_DIR/img
	echo "bench: $size: dumped in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s," \
		"$(du -sm "$ZDTM_DIR/img" | awk '{ print $1 }') MiB of images"
}

# reset_run: what one restore leaves behind, except the images.
reset_run() {
	local comm=${ZDTM_PROG##*/}
	zdtm_kill "${ZDTM_RPID:-}" "$comm"
	[ -n "${ZDTM_DPID:-}" ] && zdtm_kill "$ZDTM_DPID" "$(zdtm_daemon_comm)"
	ZDTM_RPID= ZDTM_DAEMON= ZDTM_DPID= ZDTM_DRC= ZDTM_RWORK=
	ZDTM_DAEMON_ARGS=() ZDTM_DAEMON_WRAP=() ZDTM_RESTORE_WRAP=() ZDTM_DAEMON_COMM=
	rm -rf "$ZDTM_WORK" "$ZDTM_OUT" "$ZDTM_OUT".* "$ZDTM_STATS" "$ZDTM_DIR"/*.times "$ZDTM_DIR/mig" "$ZDTM_DIR/mig-dst"
	mkdir -p "$ZDTM_WORK"
}

# run_case SIZE PATTERN CONFIG REP: one restore; appends its line to the CSV. Returns 2
# when it gave up (give_up).
run_case() {
	local size=$1 pattern=$2 config=$3 rep=$4
	local tag="$size $pattern $config rep $rep" res=$ZDTM_DIR/result rt=$ZDTM_DIR/restore.times
	local dt=$ZDTM_DIR/daemon.times daemon= remote= migrate= f
	reset_run
	rm -f "$res"
	case $config in
	ours-profile | ours-record) daemon=ours ;;
	*-local | *-remote | *-migrate) daemon=${config%-*} ;;
	esac
	[[ $config == *-remote ]] && remote=1
	[[ $config == *-migrate ]] && remote=1 migrate=1
	echo "$pattern $res" >"$GO"
	# Warm cache, said so in the table: the host evicts page cache unused for a minute.
	cat "$ZDTM_DIR"/img/pages-*.img >/dev/null

	ZDTM_RESTORE_WRAP=(taskset -c "$CPU_WORK" "$BIN/rusage" -o "$rt" --kill-pidfile "$ZDTM_WORK/restored.pid" --)
	ZDTM_RWORK=$ZDTM_WORK
	if [ -n "$daemon" ]; then
		ZDTM_DAEMON_WRAP=(taskset -c "$CPU_DAEMON" "$BIN/rusage" -o "$dt" --)
		ZDTM_DAEMON_COMM=rusage
		if [ "$daemon" = ours ]; then
			# The loop on the daemons' CPU; the copy thread (local) or the page-server
			# receivers (remote) free to use the other.
			ZDTM_DAEMON_WRAP=(taskset -c "$CPU_DAEMON,$CPU_WORK" "$BIN/rusage" -o "$dt" --)
			# shellcheck disable=SC2206 # words, as on a command line
			ZDTM_DAEMON_ARGS=(--loop-cpu "$CPU_DAEMON" ${BENCH_OURS_ARGS:-})
			[ "$config" = ours-record ] && ZDTM_DAEMON_ARGS+=(--record-profile "$PROFILE")
			[ "$config" = ours-profile ] && ZDTM_DAEMON_ARGS+=(--prefetch-profile "$PROFILE")
		fi
	fi
	local dst_ns=("${ZDTM_DST_NS_REMOTE[@]}")
	if [ -n "$remote" ]; then
		ZDTM_DST_NS=("${dst_ns[@]}")
		ZDTM_SRCIMG=$ZDTM_DIR/img
		ZDTM_REMOTE_SRC_WRAP=(taskset -c "$CPU_DAEMON")
		if [ -n "$migrate" ]; then
			# A live source for each rep: the lazy dump kills its tree once served.
			rm -f "$ZDTM_PIDFILE"
			mkdir -p "$ZDTM_DIR/mig"
			ZDTM_SRCIMG=$ZDTM_DIR/mig
			# shellcheck disable=SC2086 # as in setup_size
			zdtm_start "$BIN/workload" --size "$size" --go "$GO" --cpu "$CPU_WORK" --settle \
				${BENCH_WORKLOAD_ARGS:-} || die "$tag: the migration source did not start"
			zdtm_remote_serve dump || die "$tag: criu dump --lazy-pages did not start serving"
			zdtm_remote_copy "$ZDTM_DIR/mig-dst" || die "$tag: the destination's copy of the lazy dump"
		elif [ "$daemon" = criu ]; then
			zdtm_remote_serve ps || die "$tag: criu page-server did not start"
			ZDTM_IMG=$ZDTM_DIR/dst
		else
			zdtm_remote_serve ours || die "$tag: lazy-uffd page-server did not start"
			ZDTM_IMG=$ZDTM_DIR/dst
		fi
	else
		ZDTM_DST_NS=()
		ZDTM_IMG=$ZDTM_DIR/img
	fi

	if [ "$config" = pull-migrate ]; then
		pull_case "$size" "$rep"
		return
	fi
	# Memory left free for ~2 s goes back to the host: bring it in for the restore.
	"$BIN/warm" $(($(mib "$size") + 64)) || die "$tag: bench-warm"
	if [ -z "$daemon" ]; then
		zdtm_restore -W "$ZDTM_WORK" || die "$tag: criu restore failed"
	elif [ -n "$remote" ]; then
		# zdtm_remote_restore sets the daemon's arguments: ours go after its own.
		ZDTM_REMOTE_DAEMON_ARGS=("${ZDTM_DAEMON_ARGS[@]}")
		zdtm_remote_restore "$daemon" || die "$tag: lazy restore failed"
	else
		zdtm_lazy_restore "$daemon" || die "$tag: lazy restore failed"
	fi
	[ "$(kv "$rt" kill_error)" = 0 ] || die "$tag: the start signal did not reach the restored workload"
	# No daemon: zdtm_stop would not send the second SIGTERM the workload waits for.
	if [ -z "$daemon" ]; then
		zdtm_settle || die "$tag: the restored workload did not finish its pass"
	fi
	if ! zdtm_stop --signalled; then
		# Still running after BENCH_TIMEOUT, nothing wrong said: slow, which is a result.
		if zdtm_alive "${ZDTM_RPID:-}" && [ ! -s "$res" ]; then
			give_up "$size" "$pattern" "$config" "$rep" "$remote"
			return 2
		fi
		die "$tag: the restored workload did not finish"
	fi
	if ! zdtm_expect_pass >/dev/null; then
		if [ -s "$res" ] && [ "$(kv "$res" corrupt)" != 0 ]; then
			die "$tag: $(kv "$res" corrupt) corrupt pages, the first is page $(kv "$res" first_corrupt) ($(cat "$ZDTM_OUT"))"
		fi
		zdtm_diag
		die "$tag: the workload says: $(cat "$ZDTM_OUT" 2>/dev/null || echo nothing)"
	fi
	[ -s "$res" ] || die "$tag: the workload wrote no results"
	if [ -n "$daemon" ]; then
		zdtm_lazy_wait || die "$tag: the daemon did not exit"
		zdtm_lazy_check_daemon || die "$tag: the $daemon daemon did not end cleanly"
	fi
	if [ -n "$remote" ]; then
		zdtm_remote_finish_source || die "$tag: the source side did not end cleanly"
		ZDTM_DST_NS=()
	fi

	# A recording restore is not measured.
	[ "$config" = ours-record ] && return 0
	# One CSV line: every figure of this rep.
	local restore_s pop_s rss= cpu= st_rss= st_cpu= st_ugbs= end
	restore_s=$(kv "$rt" wall_s)
	if [ -n "$daemon" ]; then
		end=$(kv "$dt" end_mono)
		pop_s=$(awk -v a="$(kv "$rt" start_mono)" -v b="$end" 'BEGIN { printf "%.6f", b - a }')
		rss=$(awk -v k="$(kv "$dt" maxrss_kib)" 'BEGIN { printf "%.1f", k / 1024 }')
		cpu=$(awk -v u="$(kv "$dt" user_s)" -v s="$(kv "$dt" sys_s)" 'BEGIN { printf "%.3f", u + s }')
	else
		pop_s=$restore_s
	fi
	if [ "$daemon" = ours ]; then
		f=$(json "$ZDTM_STATS" daemon_max_rss_kib)
		[ -n "$f" ] && st_rss=$(awk -v k="$f" 'BEGIN { printf "%.1f", k / 1024 }')
		st_cpu=$(json "$ZDTM_STATS" daemon_cpu_seconds)
		st_ugbs=$(json "$ZDTM_STATS" gbytes_per_second_from_uffd)
		mkdir -p "$OUT/stats"
		cp "$ZDTM_STATS" "$OUT/stats/$size-$pattern-$config-$rep.json"
	fi
	local line
	line=$(awk -v size="$size" -v mib="$(mib "$size")" -v pattern="$pattern" -v config="$config" -v rep="$rep" \
		-v restore="$restore_s" -v pass="$(kv "$res" pass_s)" -v hot="$(kv "$res" hot_s)" \
		-v med="$(kv "$res" lat_median_us)" -v p99="$(kv "$res" lat_p99_us)" -v pop="$pop_s" \
		-v rss="$rss" -v cpu="$cpu" -v corrupt="$(kv "$res" corrupt)" -v first="$(kv "$res" first_corrupt)" \
		-v go="$(kv "$res" go_real)" -v rend="$(kv "$rt" end_real)" -v srss="$st_rss" -v scpu="$st_cpu" \
		-v cpus="$(kv "$res" cpus_at_go)" -v waits="$(kv "$res" waits)" -v wmed="$(kv "$res" wait_median_us)" \
		-v ugbs="$st_ugbs" \
		'BEGIN { printf "%s,%s,%s,%d,%.6f,%.6f,%.6f,%.3f,%.3f,%.6f,%.3f,%s,%s,%d,%d,%.1f,%s,%s,%s,%d,%.3f,%s\n",
			size, pattern, config, rep, restore, pass, hot, med, p99, pop, mib * 1048576 / pop / 1e9,
			rss, cpu, corrupt, first, (go - rend) * 1e6, srss, scpu, cpus, waits, wmed, ugbs }')
	echo "$line" >>"$CSV"
	IFS=, read -r _ _ _ _ restore_s f _ _ _ pop_s gbs _ <<<"$line"
	printf 'bench: [%d/%d] %-5s %-6s %-12s rep %d: restore %5.0f ms, first-touch pass %6.2f s, populated in %6.2f s (%s GB/s)%s\n' \
		"$DONE" "$TOTAL" "$size" "$pattern" "$config" "$rep" "$(awk -v r="$restore_s" 'BEGIN { print r * 1000 }')" \
		"$f" "$pop_s" "$gbs" "${rss:+, daemon $rss MiB $cpu s CPU}"
}

# pull_case SIZE REP: the rest of a pull-migrate rep, its source serving: bench/pull where
# a daemon would run (the destination's namespace, both CPUs, as our receivers), and the
# CSV line: its connect-to-CLOSE time as the population, its CPU as the daemon's.
pull_case() {
	local size=$1 rep=$2 out=$ZDTM_DIR/pull.out line
	# shellcheck disable=SC2086 # words, as on a command line
	"${ZDTM_DST_NS[@]}" taskset -c "${BENCH_PULL_CPUS:-$CPU_DAEMON,$CPU_WORK}" "$BIN/pull" --images "$ZDTM_IMG" \
		--address "$ZDTM_REMOTE_SRC_IP" --port "$ZDTM_REMOTE_PORT" ${BENCH_PULL_ARGS:-} >"$out" ||
		die "$size pull-migrate rep $rep: bench-pull failed"
	zdtm_remote_finish_source || die "$size pull-migrate rep $rep: the source side did not end cleanly"
	ZDTM_DST_NS=()
	line=$(awk -v size="$size" -v mib="$(mib "$size")" -v rep="$rep" -v pop="$(kv "$out" wall_s)" \
		-v cpu="$(kv "$out" cpu_s)" \
		'BEGIN { printf "%s,-,pull-migrate,%d,,,,,,%.6f,%.3f,,%.3f,0,0,,,,,,,\n", size, rep, pop,
			mib * 1048576 / pop / 1e9, cpu }')
	echo "$line" >>"$CSV"
	printf 'bench: [%d/%d] %-5s %-6s %-12s rep %d: every page fetched in %6.2f s (%s GB/s), %s s CPU\n' \
		"$DONE" "$TOTAL" "$size" - pull-migrate "$rep" "$(kv "$out" wall_s)" "$(cut -d, -f11 <<<"$line")" \
		"$(kv "$out" cpu_s)"
}

# give_up SIZE PATTERN CONFIG REP REMOTE: a rep that outlasted BENCH_TIMEOUT ends here,
# reported, not failed (CRIU's daemon takes hours over 4G in random order); its
# processes are killed and the case is not repeated.
give_up() {
	local remote=$5
	printf 'bench: [%d/%d] %-5s %-6s %-12s rep %d: gave up after BENCH_TIMEOUT=%s s, the pass unfinished (slow, not failed)\n' \
		"$DONE" "$TOTAL" "$1" "$2" "$3" "$4" "$TIMEOUT"
	echo "$1 $2 $3 $TIMEOUT" >>"$GAVE_UP"
	reset_run
	if [ -n "$remote" ]; then
		zdtm_kill "${ZDTM_SRCPID:-}" "${ZDTM_SRCCOMM:-}"
		# A migration source: its frozen tree stays once criu dump is gone.
		[[ $3 == *-migrate ]] && zdtm_kill "${ZDTM_PID:-}" workload
		ZDTM_DST_NS=()
	fi
}

# record_profile SIZE: record the hot pattern's profile for ours-profile, then keep its
# first hot-set-size records (the startup faults come first, so a few more) as the
# working set: the file's record count (u64 at offset 24) and length follow
# lazy-pages/profile.h. The header's size is what the records leave of the file, so
# that a new header version cannot cut a record in two.
record_profile() {
	local size=$1 nr keep hdr
	echo "bench: $size: recording the hot pattern's profile for ours-profile"
	run_case "$size" hot ours-record 0
	[ -s "$PROFILE" ] || die "$size: no profile was recorded at $PROFILE"
	nr=$(od -An -t u8 -j 24 -N 8 "$PROFILE" | tr -d ' ')
	hdr=$(($(stat -c %s "$PROFILE") - 16 * nr))
	((hdr >= 32 && hdr <= 64)) || die "$size: $PROFILE: $nr records do not fit its $(stat -c %s "$PROFILE") bytes"
	keep=$(($(mib "$size") * 256 / 10 + 64))
	if ((nr > keep)); then
		truncate -s $((hdr + 16 * keep)) "$PROFILE" || die "$size: cutting the profile"
		printf "$(printf '\\x%02x' $((keep & 255)) $((keep >> 8 & 255)) $((keep >> 16 & 255)) $((keep >> 24 & 255)))" |
			dd of="$PROFILE" bs=1 seek=24 conv=notrunc status=none || die "$size: cutting the profile"
		nr=$keep
	fi
	echo "bench: $size: profile of $nr records"
}

# report: the table of medians, the ratios and the summary CSV, from the CSV and floor.
report() {
	local floor=$OUT/floor.txt
	awk -F, -v summary="$SUMMARY" -v f2m="$(kv "$floor" copy_2m_gbs)" -v frt="$(kv "$floor" rt_poll_us)" \
		-v frts="$(kv "$floor" rt_spin_us)" '
	function med(key, col,    n, i, j, t, v) {
		n = cnt[key]
		for (i = 1; i <= n; i++) v[i] = val[key, i, col]
		if (v[1] == "") return ""
		for (i = 2; i <= n; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] + 0 > t + 0; j--) v[j + 1] = v[j]; v[j + 1] = t }
		return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
	}
	function fmt(x, f) { return x == "" ? "-" : sprintf(f, x) }
	function ratio(a, b) { return (a == "" || b == "" || b + 0 == 0) ? "-" : sprintf("%.2f", a / b) }
	NR == 1 { next }
	{
		key = $1 SUBSEP $2 SUBSEP $3
		if (!(key in cnt)) { order[++nk] = key }
		n = ++cnt[key]
		for (c = 5; c <= 22; c++) val[key, n, c] = $c
		bad[key] += $14
		if (!($1 in seen_size)) { seen_size[$1] = 1; sizes[++ns] = $1 }
		if (!($2 in seen_pat)) { seen_pat[$2] = 1; pats[++np] = $2 }
	}
	END {
		print "size,pattern,config,reps,restore_s,go_delay_us,pass_s,hot_s,lat_median_us,lat_p99_us,waits,wait_median_us,populate_s,gbs,daemon_rss_mib,daemon_cpu_s,corrupt,stats_rss_mib,stats_cpu_s,stats_uffd_gbs" > summary
		printf "%-5s %-6s %-12s %4s %8s %6s %7s %6s %7s %8s %7s %8s %8s %5s %6s %6s %7s\n", "size", "pattern", "config", "reps",
			"restore", "start", "pass", "hot", "lat med", "lat p99", "waits", "wait med", "populate", "GB/s", "RSS", "CPU", "corrupt"
		printf "%-5s %-6s %-12s %4s %8s %6s %7s %6s %7s %8s %7s %8s %8s %5s %6s %6s %7s\n", "", "", "", "",
			"ms", "ms", "s", "s", "us", "us", "", "us", "s", "", "MiB", "s", "pages"
		for (k = 1; k <= nk; k++) {
			key = order[k]; split(key, p, SUBSEP)
			for (c = 5; c <= 22; c++) m[key, c] = med(key, c)
			printf "%-5s %-6s %-12s %4d %8s %6s %7s %6s %7s %8s %7s %8s %8s %5s %6s %6s %7s\n", p[1], p[2], p[3], cnt[key],
				fmt(m[key, 5] == "" ? "" : m[key, 5] * 1000, "%.0f"), fmt(m[key, 16] == "" ? "" : m[key, 16] / 1000, "%.1f"), fmt(m[key, 6], "%.3f"), p[2] == "hot" ? fmt(m[key, 7], "%.3f") : "-",
				fmt(m[key, 8], "%.1f"), fmt(m[key, 9], "%.1f"), fmt(m[key, 20], "%d"),
				m[key, 20] + 0 ? fmt(m[key, 21], "%.1f") : "-", fmt(m[key, 10], "%.3f"), fmt(m[key, 11], "%.2f"),
				fmt(m[key, 12], "%.1f"), fmt(m[key, 13], "%.2f"), m[key, 6] == "" ? "-" : bad[key]
			printf "%s,%s,%s,%d,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%d,%s,%s,%s\n", p[1], p[2], p[3], cnt[key], m[key, 5],
				m[key, 16], m[key, 6],
				m[key, 7], m[key, 8], m[key, 9], m[key, 20], m[key, 21], m[key, 10], m[key, 11], m[key, 12], m[key, 13],
				bad[key], m[key, 17], m[key, 18], m[key, 22] > summary
		}
		hdr = sprintf("\nours/criu (median against median; below 1 is better for ours except GB/s):\n" \
			"%-5s %-6s %-7s %8s %6s %8s %8s %8s %8s %9s %6s %6s %6s", "size", "pattern", "where", "restore", "start", "pass",
			"lat med", "lat p99", "wait med", "populate", "GB/s", "RSS", "CPU")
		for (s = 1; s <= ns; s++) for (q = 1; q <= np; q++) for (w = 1; w <= 3; w++) {
			where = w == 1 ? "local" : w == 2 ? "remote" : "migrate"
			o = sizes[s] SUBSEP pats[q] SUBSEP "ours-" where; c = sizes[s] SUBSEP pats[q] SUBSEP "criu-" where
			if (!(o in cnt) || !(c in cnt)) continue
			if (hdr != "") { print hdr; hdr = "" }
			printf "%-5s %-6s %-7s %8s %6s %8s %8s %8s %8s %9s %6s %6s %6s\n", sizes[s], pats[q], where,
				ratio(m[o, 5], m[c, 5]), ratio(m[o, 16], m[c, 16]), ratio(m[o, 6], m[c, 6]), ratio(m[o, 8], m[c, 8]), ratio(m[o, 9], m[c, 9]),
				ratio(m[o, 21], m[c, 21]), ratio(m[o, 10], m[c, 10]), ratio(m[o, 11], m[c, 11]), ratio(m[o, 12], m[c, 12]), ratio(m[o, 13], m[c, 13])
		}
		hdr = "\nthe hot set with a recorded profile (ours-profile) against eager restore, hot column:"
		for (s = 1; s <= ns; s++) {
			o = sizes[s] SUBSEP "hot" SUBSEP "ours-profile"; c = sizes[s] SUBSEP "hot" SUBSEP "eager"
			l = sizes[s] SUBSEP "hot" SUBSEP "ours-local"
			if (!(o in cnt) || !(c in cnt)) continue
			if (hdr != "") { print hdr; hdr = "" }
			printf "  %-5s %s s against %s s: %s x eager (without the profile: %s x)\n", sizes[s],
				fmt(m[o, 7], "%.3f"), fmt(m[c, 7], "%.3f"), ratio(m[o, 7], m[c, 7]), (l in cnt) ? ratio(m[l, 7], m[c, 7]) : "-"
		}
		hdr = "\nthe floor the migration source sets (pull-migrate: every page from criu dump --lazy-pages, no restore):"
		for (s = 1; s <= ns; s++) {
			f = sizes[s] SUBSEP "-" SUBSEP "pull-migrate"
			c = sizes[s] SUBSEP "seq" SUBSEP "criu-migrate"; o = sizes[s] SUBSEP "seq" SUBSEP "ours-migrate"
			if (!(f in cnt)) continue
			if (hdr != "") { print hdr; hdr = "" }
			printf "  %-5s the source alone %s s (%s GB/s)", sizes[s], fmt(m[f, 10], "%.3f"), fmt(m[f, 11], "%.2f")
			if (c in cnt && o in cnt)
				printf "; seq: criu lazy-pages %s s, 3x as fast is %s s; ours %s s, of which restore %s s;" \
					" restore + the source alone: %s s (%s x criu lazy-pages)", fmt(m[c, 10], "%.3f"),
					fmt(m[c, 10] / 3, "%.3f"), fmt(m[o, 10], "%.3f"), fmt(m[o, 5], "%.3f"),
					fmt(m[o, 5] + m[f, 10], "%.3f"), ratio(m[c, 10], m[o, 5] + m[f, 10])
			printf "\n"
		}
		hdr = sprintf("\nours-local against the floor (UFFDIO_COPY 2 MiB %s GB/s; fault round trip %s us blocked," \
			" %s us busy-polling):", f2m, frt, frts)
		for (s = 1; s <= ns; s++) for (q = 1; q <= np; q++) {
			o = sizes[s] SUBSEP pats[q] SUBSEP "ours-local"
			if (!(o in cnt)) continue
			if (hdr != "") { print hdr; hdr = "" }
			printf "  %-5s %-6s  GB/s %s of the 2 MiB floor (%s from its first uffd); wait median %s x the blocked" \
				" round trip (lat med, all first touches: %s x)\n", sizes[s], pats[q], ratio(m[o, 11], f2m),
				ratio(m[o, 22], f2m), ratio(m[o, 21], frt), ratio(m[o, 8], frt)
		}
	}' "$CSV"
	if [ -s "$GAVE_UP" ]; then
		echo
		echo "gave up after BENCH_TIMEOUT (slow, not failed; in no median or ratio above):"
		awk '{ printf "  %-5s %-6s %-12s first-touch pass unfinished after %s s\n", $1, $2, $3, $4 }' "$GAVE_UP"
	fi
}

usage_check
bench_require bench workload floor rusage warm pull
[ -x "$LAZY_UFFD" ] || die "$LAZY_UFFD is not built: make"
command -v taskset >/dev/null || die "taskset (util-linux) is missing"
[ "$(nproc)" -ge 2 ] || CPU_DAEMON=0
[ "$(cat /proc/sys/fs/pipe-max-size)" -ge 16777216 ] ||
	die "fs.pipe-max-size is below 16 MiB (criu's lazy page server needs it): make deps sets it"

trap on_exit EXIT
rm -rf "$RUN" "$OUT/stats"
mkdir -p "$RUN"
t_begin=$(date +%s)

echo "bench: criu $CRIU_VERSION ($CRIU), lazy-uffd $(git -C "$TOP" describe --always --dirty 2>/dev/null || echo '?')"
echo "bench: sizes $SIZES; patterns $PATTERNS; configs $CONFIGS; $REPS reps, interleaved"
# CRIU 4.1 does not restore a task's affinity: the restored tree has criu restore's, so
# taskset on criu restore pins the workload (which reports what it found: cpus_at_go).
echo "bench: pinning: criu restore and so the restored workload on CPU $CPU_WORK (taskset -c $CPU_WORK);" \
	"lazy-pages daemons and page servers on CPU $CPU_DAEMON (taskset -c $CPU_DAEMON); lazy-uffd's" \
	"loop too (--loop-cpu $CPU_DAEMON), its copy thread or page-server receivers on either CPU" \
	"(taskset -c $CPU_DAEMON,$CPU_WORK)"
echo "bench: warm cache: image files are read just before every restore; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "bench: measuring the floor (bench-floor)"
"$BIN/floor" >"$OUT/floor.txt" || die "bench-floor failed"
echo "bench: floor: UFFDIO_COPY $(kv "$OUT/floor.txt" copy_4k_gbs) GB/s in 4 KiB chunks," \
	"$(kv "$OUT/floor.txt" copy_2m_gbs) GB/s in 2 MiB chunks, $(kv "$OUT/floor.txt" copy_2m_2t_gbs) GB/s with 2 threads;" \
	"fault round trip $(kv "$OUT/floor.txt" rt_poll_us) us (handler blocked, other CPU)," \
	"$(kv "$OUT/floor.txt" rt_spin_us) us (busy-polling, other CPU), $(kv "$OUT/floor.txt" rt_same_us) us (same CPU)"

echo "size,pattern,config,rep,restore_s,pass_s,hot_s,lat_median_us,lat_p99_us,populate_s,gbs,daemon_rss_mib,daemon_cpu_s,corrupt,first_corrupt,go_delay_us,stats_rss_mib,stats_cpu_s,cpus_at_go,waits,wait_median_us,stats_uffd_gbs" >"$CSV"
rm -f "$GAVE_UP"

BATS_TEST_TMPDIR=$RUN
ZDTM_DIR=$RUN
zdtm_remote_setup >/dev/null || die "cannot make the network namespaces (ip netns, veth)"
ZDTM_DST_NS_REMOTE=("${ZDTM_DST_NS[@]}")
ZDTM_DST_NS=()

nsz=$(wc -w <<<"$SIZES") npat=$(wc -w <<<"$PATTERNS") ncfg=$(wc -w <<<"$CONFIGS")
TOTAL=$((nsz * npat * ncfg * REPS))
# ours-profile runs with the hot pattern only.
if [[ " $CONFIGS " == *" ours-profile "* ]]; then
	TOTAL=$((TOTAL - nsz * (npat - $([[ " $PATTERNS " == *" hot "* ]] && echo 1 || echo 0)) * REPS))
fi
# pull-migrate runs once a rep, whatever the pattern.
if [[ " $CONFIGS " == *" pull-migrate "* ]]; then
	TOTAL=$((TOTAL - nsz * (npat - 1) * REPS))
fi
DONE=0
declare -A took gave_up
for size in $SIZES; do
	setup_size "$size"
	for ((rep = 1; rep <= REPS; rep++)); do
		for pattern in $PATTERNS; do
			for config in $CONFIGS; do
				[ "$config" = ours-profile ] && [ "$pattern" != hot ] && continue
				[ "$config" = pull-migrate ] && [ "$pattern" != "${PATTERNS%% *}" ] && continue
				DONE=$((DONE + 1))
				key="$size $pattern $config"
				if ((rep > 1)) && [ -n "${gave_up[$key]:-}" ]; then
					echo "bench: [$DONE/$TOTAL] $key rep $rep: skipped (rep 1 gave up)"
					continue
				fi
				if ((rep > 1)) && ((${took[$key]:-0} > SLOW)); then
					echo "bench: [$DONE/$TOTAL] $key rep $rep: skipped (rep 1 took ${took[$key]} s > BENCH_SLOW=$SLOW)"
					continue
				fi
				[ "$config" = ours-profile ] && [ ! -s "$PROFILE" ] && record_profile "$size"
				t0=$(date +%s)
				run_case "$size" "$pattern" "$config" "$rep" || gave_up[$key]=1
				((rep == 1)) && took[$key]=$(($(date +%s) - t0))
			done
		done
	done
	# Not zdtm_teardown: the network namespaces serve the next size too.
	reset_run
	zdtm_kill "${ZDTM_PID:-}" workload
	zdtm_kill "${ZDTM_LAUNCHER:-}" unshare
	rm -rf "${RUN:?}/$size"
done

cpus=$(awk -F, 'NR > 1 { print $19 }' "$CSV" | sort -u | tr '\n' ' ')
echo
echo "lazy-uffd bench: medians over the reps; warm page cache; restored workload on CPU $CPU_WORK" \
	"(affinity seen after restore: ${cpus% }), daemons and page servers on CPU $CPU_DAEMON"
report | tee "$OUT/table.txt"
echo
echo "bench: every rep in $CSV, medians in $SUMMARY, this table in $OUT/table.txt;" \
	"$(($(date +%s) - t_begin)) s in all"
