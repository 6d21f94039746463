# Helpers for test/zdtm/*.bats: run one zdtm program through criu dump and restore.
# `load zdtm` after `load ../lib`. The contract of the programs is in lib/zdtmtst.h.
#
#   zdtm_start PROG [ARGS...]   start build/zdtm/PROG (or PROG, a path) as init of a new
#                               pid namespace and session leader; wait for its pidfile
#                               (sets ZDTM_PID)
#   zdtm_wait_ready PROG READY...
#                               the wait of zdtm_start, for files that start PROG their
#                               own way: until the command READY... succeeds
#   zdtm_dump [CRIU ARGS...]    criu dump -t ZDTM_PID -D ZDTM_IMG (the tree is killed)
#   zdtm_restore [CRIU ARGS...] criu restore -d -D ZDTM_IMG (sets ZDTM_RPID)
#                               (both also get ZDTM_DUMP_ARGS / ZDTM_RESTORE_ARGS, arrays
#                               a test sets for every dump / restore it runs)
#   zdtm_stop [--signalled]     SIGTERM the restored root (unless already sent), wait for
#                               its outfile and exit
#   zdtm_expect_pass            the outfile is exactly "PASS"
#   zdtm_run PROG [ARGS...]     all of the above
#   zdtm_diag                   print the tails of the criu logs and the outfiles
#   zdtm_teardown               SIGKILL what is left (by pid), remove the images
#
# Lazy restores (DAEMON is `ours`, build/lazy-uffd daemon, or `criu`, criu lazy-pages):
#   zdtm_lazy_restore DAEMON [CRIU ARGS...]
#                               start the daemon on ZDTM_IMG with work dir ZDTM_WORK
#                               (given relative to ZDTM_DIR with ZDTM_LAZY_RELATIVE=1),
#                               wait for its ready byte (--status-fd over a fifo), then
#                               criu restore --lazy-pages with the same -W
#   zdtm_read_ready FIFO TIMEOUT
#                               a daemon's ready byte from its --status-fd fifo (also
#                               for lu_plugin.bash's pl_daemon)
#   zdtm_lazy_wait              wait for the daemon to exit; sets ZDTM_DRC
#   zdtm_lazy_check             the daemon exited 0, its log has no Error line, (ours)
#                               its --stats show pages served lazily, and no
#                               --expect-lazy probe found its memory all present
#   zdtm_lazy_finish            zdtm_lazy_wait + zdtm_lazy_check
#   zdtm_lazy_cycle DAEMON PROG [ARGS...]
#                               start (with --expect-lazy --settle), dump, lazy restore,
#                               stop (no verdict)
#   zdtm_run_lazy DAEMON PROG [ARGS...]
#                               a whole lazy cycle that must PASS, then zdtm_lazy_finish;
#                               a cycle that did not exercise the lazy path (see
#                               zdtm_lazy_exercised), or in which CRIU's daemon lost one
#                               of its known races (zdtm_criu_lost_race), runs again,
#                               ZDTM_LAZY_ATTEMPTS in all
#
# Parent images (this kernel has no soft-dirty tracking, so criu pre-dump cannot run):
#   zdtm_mkchain FLAGS LEVELS [OPTS]
#                               turn the dump in ZDTM_DIR/img into a chain under
#                               ZDTM_DIR/chain with build/test/tools/mkparent: LEVELS 1
#                               is b -> a, 2 is c -> b -> a; FLAGS parent (PE_PARENT) or
#                               lazy-parent (PE_LAZY|PE_PARENT); ZDTM_IMG becomes the top
#                               and `lazy-uffd show` must agree with what mkparent made
#
# --settle (lib/zdtmtst.h): a program that calls zt_settle() writes OUTFILE.settle and
# waits for a second SIGTERM; zdtm_stop sends it once the daemon has exited, so such a
# program checks again after all background population.
#
# Bounds (seconds): ZDTM_START_TIMEOUT (60), ZDTM_STOP_TIMEOUT (60), ZDTM_READY_TIMEOUT
# (20: the daemon's ready byte), ZDTM_LAZY_TIMEOUT (60: the daemon's exit).
#
# For bench/bench.sh (tests leave them as zdtm_setup sets them): ZDTM_RESTORE_WRAP and
# ZDTM_DAEMON_WRAP, command prefixes for criu restore and the lazy-pages daemon (inside
# the namespace prefix: taskset, bench/rusage); ZDTM_DAEMON_COMM, the comm of the
# daemon's pid when a wrapper forks; ZDTM_VERBOSITY (4), the -v of daemons and restores.

ZDTM_START_TIMEOUT=${ZDTM_START_TIMEOUT:-60}
ZDTM_STOP_TIMEOUT=${ZDTM_STOP_TIMEOUT:-60}
ZDTM_READY_TIMEOUT=${ZDTM_READY_TIMEOUT:-20}
ZDTM_LAZY_TIMEOUT=${ZDTM_LAZY_TIMEOUT:-60}

# zdtm_setup: per-test state under BATS_TEST_TMPDIR (fresh for every test).
zdtm_setup() {
	ZDTM_DIR=$BATS_TEST_TMPDIR
	ZDTM_IMG=$ZDTM_DIR/img
	ZDTM_PIDFILE=$ZDTM_DIR/test.pid
	ZDTM_OUT=$ZDTM_DIR/test.out
	ZDTM_ERR=$ZDTM_DIR/test.err
	ZDTM_PROG=
	ZDTM_LAUNCHER=
	ZDTM_PID=
	ZDTM_RPID=
	# The restore's work dir (criu -W) when it is not ZDTM_IMG: logs and pidfile go there.
	ZDTM_RWORK=
	ZDTM_WORK=$ZDTM_DIR/work
	ZDTM_STATS=$ZDTM_DIR/stats.json
	ZDTM_DAEMON=
	ZDTM_DPID=
	ZDTM_DDPID=
	ZDTM_DRC=
	# Remote runs (remote.bash): command prefixes that enter the source's and the
	# destination's network namespace, and the daemon's page-server options.
	ZDTM_SRC_NS=()
	ZDTM_DST_NS=()
	ZDTM_DAEMON_ARGS=()
	ZDTM_RESTORE_WRAP=()
	ZDTM_DAEMON_WRAP=()
	ZDTM_DUMP_ARGS=()
	ZDTM_RESTORE_ARGS=()
	ZDTM_DAEMON_COMM=
	# Nothing from an earlier cycle in the same test may be taken for this one's.
	rm -rf "$ZDTM_PIDFILE" "$ZDTM_OUT" "$ZDTM_OUT".* "$ZDTM_ERR" "$ZDTM_IMG" "$ZDTM_WORK" \
		"$ZDTM_STATS" "$ZDTM_DIR/chain"
	mkdir -p "$ZDTM_IMG"
}

# zdtm_setup_lazy: setup() of the files that run our daemon: root, criu and
# build/lazy-uffd (else a skip saying which is missing), then zdtm_setup.
zdtm_setup_lazy() {
	lu_require_root || return
	lu_require_criu || return
	[ -x "$LAZY_UFFD" ] || { lu_skip "$LAZY_UFFD is not built"; return; }
	zdtm_setup
}

# zdtm_diag: what a failed test should show.
zdtm_diag() {
	local f
	for f in "$ZDTM_DIR/img/dump.log" "$ZDTM_IMG/restore.log" "$ZDTM_WORK/restore.log" \
		"$ZDTM_WORK/lazy.log"; do
		[ -f "$f" ] || continue
		echo "--- tail of $f (errors first)"
		grep -E 'Error|Warn' "$f" | grep -v 'RLIMIT_NOFILE' | tail -n 10
		echo "..."
		tail -n 25 "$f"
	done
	for f in "$ZDTM_DIR/daemon.out" "$ZDTM_STATS"; do
		[ -s "$f" ] || continue
		echo "--- $f"
		tail -n 20 "$f"
	done
	# unshare complains about its own signal mask once criu kills its child: noise.
	if [ -s "$ZDTM_ERR" ] && grep -qv 'sigprocmask unblock failed' "$ZDTM_ERR"; then
		echo "--- $ZDTM_ERR"
		grep -v 'sigprocmask unblock failed' "$ZDTM_ERR" | tail -n 20
	fi
	for f in "$ZDTM_OUT" "$ZDTM_OUT".*; do
		[ -s "$f" ] || continue
		echo "--- $f"
		tail -n 20 "$f"
	done
	return 0
}

# zdtm_fail MSG: print MSG and the diagnostics, then fail the test.
zdtm_fail() {
	echo "zdtm: $*"
	zdtm_diag
	return 1
}

# zdtm_alive PID: PID exists and is not a zombie.
zdtm_alive() {
	local st
	st=$(awk '{ sub(/.*\) /, ""); print $1 }' /proc/"$1"/stat 2>/dev/null) || return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# zdtm_kill PID COMM: SIGKILL PID, only if it is still the process we started (a pid
# can be reused). A pid-namespace init ignores SIGTERM without a handler; KILL works.
zdtm_kill() {
	local pid=$1 comm=$2
	[ -n "$pid" ] || return 0
	[ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "${comm:0:15}" ] || return 0
	kill -KILL "$pid" 2>/dev/null
	return 0
}

# zdtm_start PROG [ARGS...]: PROG is a name in build/zdtm/, or a path (bench/workload).
zdtm_start() {
	local prog=$1
	shift
	ZDTM_PROG=$LU_BUILD/zdtm/$prog
	[[ $prog == */* ]] && ZDTM_PROG=$prog
	[ -x "$ZDTM_PROG" ] || { echo "zdtm: $ZDTM_PROG is not built ('make $ZDTM_PROG')"; return 1; }
	# stderr goes to a file only until zt_init() points it at /dev/null (option errors).
	"${ZDTM_SRC_NS[@]}" setsid unshare -p -f setsid "$ZDTM_PROG" --pidfile "$ZDTM_PIDFILE" --outfile "$ZDTM_OUT" \
		"$@" </dev/null >/dev/null 2>"$ZDTM_ERR" 3>&- &
	ZDTM_LAUNCHER=$!
	zdtm_wait_ready "$prog" test -s "$ZDTM_PIDFILE" || return 1
	ZDTM_PID=$(cat "$ZDTM_PIDFILE")
	zdtm_alive "$ZDTM_PID" && return 0
	zdtm_fail "$prog: pid $ZDTM_PID from the pidfile is not running"
}

# zdtm_wait_ready PROG READY...: PROG was started in the background (by ZDTM_LAUNCHER,
# when set): wait until the command READY... (its pidfile is there) succeeds, at most
# ZDTM_START_TIMEOUT seconds and no longer than the launcher lives. Also for the
# zdtm_start of files that start programs their own way (userns.bats, unpriv.bats).
zdtm_wait_ready() {
	local prog=$1 i
	shift
	for ((i = 0; i < ZDTM_START_TIMEOUT * 20; i++)); do
		"$@" && return 0
		if [ -n "${ZDTM_LAUNCHER:-}" ] && ! kill -0 "$ZDTM_LAUNCHER" 2>/dev/null; then
			zdtm_fail "$prog exited before it was ready"
			return 1
		fi
		sleep 0.05
	done
	zdtm_fail "$prog: no pidfile after ${ZDTM_START_TIMEOUT}s"
}

# zdtm_dump [CRIU ARGS...]
zdtm_dump() {
	local rc=0 i
	"${ZDTM_SRC_NS[@]}" "$CRIU" dump -t "$ZDTM_PID" -D "$ZDTM_IMG" -o dump.log -v4 "${ZDTM_DUMP_ARGS[@]}" "$@" \
		>/dev/null 2>&1 || rc=$?
	[ "$rc" = 0 ] || { zdtm_fail "criu dump failed ($rc)"; return 1; }
	# Dumped trees are killed: wait for the old root to go, so its pid is free again.
	for ((i = 0; i < 200; i++)); do
		zdtm_alive "$ZDTM_PID" || return 0
		sleep 0.05
	done
	zdtm_fail "pid $ZDTM_PID still alive 10s after the dump"
}

# zdtm_restore [CRIU ARGS...]: logs and the pidfile go to ZDTM_RWORK (criu's -W, whose
# default is the images dir), which the caller passes as -W when it is not ZDTM_IMG.
zdtm_restore() {
	local rc=0
	"${ZDTM_DST_NS[@]}" "${ZDTM_RESTORE_WRAP[@]}" "$CRIU" restore -d -D "$ZDTM_IMG" -o restore.log \
		-v"${ZDTM_VERBOSITY:-4}" --pidfile restored.pid "${ZDTM_RESTORE_ARGS[@]}" "$@" \
		</dev/null >/dev/null 2>&1 3>&- || rc=$?
	[ "$rc" = 0 ] || { zdtm_fail "criu restore failed ($rc)"; return 1; }
	ZDTM_RPID=$(cat "${ZDTM_RWORK:-$ZDTM_IMG}/restored.pid" 2>/dev/null)
	[ -n "$ZDTM_RPID" ] || { zdtm_fail "criu restore wrote no pidfile"; return 1; }
	zdtm_alive "$ZDTM_RPID" || { zdtm_fail "restored root $ZDTM_RPID is not running"; return 1; }
}

# zdtm_settle: the program wrote OUTFILE.settle (or exited without): wait for the
# daemon, then send the second SIGTERM.
zdtm_settle() {
	local i
	for ((i = 0; i < ZDTM_STOP_TIMEOUT * 20; i++)); do
		[ -e "$ZDTM_OUT.settle" ] && break
		zdtm_alive "$ZDTM_RPID" || return 0
		sleep 0.05
	done
	[ -e "$ZDTM_OUT.settle" ] ||
		{ zdtm_fail "no $ZDTM_OUT.settle ${ZDTM_STOP_TIMEOUT}s after SIGTERM"; return 1; }
	zdtm_lazy_wait || return 1
	kill -TERM "$ZDTM_RPID" 2>/dev/null ||
		{ zdtm_fail "restored root $ZDTM_RPID is gone before the second SIGTERM"; return 1; }
}

# zdtm_stop [--signalled]: SIGTERM the restored root (unless it was already sent, as
# bench/rusage --kill-pidfile does); wait for the outfile, then for the exit. During a
# lazy restore, a program that settles gets its second SIGTERM after the daemon exited.
zdtm_stop() {
	local i
	if [ "${1:-}" != --signalled ]; then
		kill -TERM "$ZDTM_RPID" 2>/dev/null || { zdtm_fail "restored root $ZDTM_RPID is gone"; return 1; }
	fi
	if [ -n "$ZDTM_DAEMON" ]; then
		zdtm_settle || return 1
	fi
	for ((i = 0; i < ZDTM_STOP_TIMEOUT * 20; i++)); do
		# Liveness first: the outfile is renamed into place before the exit.
		if ! zdtm_alive "$ZDTM_RPID"; then
			[ -e "$ZDTM_OUT" ] && return 0
			zdtm_fail "restored root $ZDTM_RPID exited without writing $ZDTM_OUT"
			return 1
		fi
		sleep 0.05
	done
	zdtm_fail "no outfile and exit ${ZDTM_STOP_TIMEOUT}s after SIGTERM"
}

# zdtm_expect_pass: the outfile is exactly "PASS\n".
zdtm_expect_pass() {
	[ "$(cat "$ZDTM_OUT" 2>/dev/null)" = PASS ] && [ "$(wc -c <"$ZDTM_OUT")" = 5 ] && return 0
	zdtm_fail "outfile is not PASS"
}

# zdtm_expect_fail REGEX: the outfile is one line "FAIL: ..." matching REGEX.
zdtm_expect_fail() {
	local text
	text=$(cat "$ZDTM_OUT" 2>/dev/null)
	if [[ $text == "FAIL: "* ]] && [ "$(wc -l <"$ZDTM_OUT")" = 1 ] && [[ $text =~ $1 ]]; then
		return 0
	fi
	zdtm_fail "outfile does not match /$1/"
}

# zdtm_cycle PROG [ARGS...]: start, dump, restore, stop (no verdict).
zdtm_cycle() {
	zdtm_start "$@" || return 1
	zdtm_dump || return 1
	zdtm_restore || return 1
	zdtm_stop
}

# zdtm_run PROG [ARGS...]: a whole cycle that must PASS.
zdtm_run() {
	zdtm_cycle "$@" || return 1
	zdtm_expect_pass
}

# --- lazy restores ------------------------------------------------------------

# zdtm_daemon_comm: the comm of the running daemon (for kills by pid).
zdtm_daemon_comm() {
	if [ -n "${ZDTM_DAEMON_COMM:-}" ]; then
		echo "$ZDTM_DAEMON_COMM"
		return
	fi
	case $ZDTM_DAEMON in
	ours) echo "${LAZY_UFFD##*/}" ;;
	criu) echo "${CRIU##*/}" ;;
	esac
}

# zdtm_read_ready FIFO TIMEOUT: the ready byte (one NUL, then EOF) of a process started
# in the background with --status-fd on FIFO opened for writing by its shell; FIFO is
# removed. Returns 0 on the NUL; else 1 with ZDTM_READY_RC, read's status (> 128: no byte
# in TIMEOUT seconds, else EOF), and ZDTM_READY_READ, what came instead of the NUL.
# Read-only: the open meets the writer's (its shell opened the fifo before the exec), and
# a writer that dies without writing gives EOF at once. One read with the whole timeout,
# never a loop of short ones: bash loses a byte it read just as a read -t timer fires,
# which on a loaded machine happens (one start in five under 12 busy loops on 2 cores).
zdtm_read_ready() {
	local fifo=$1 fd
	ZDTM_READY_RC=0
	ZDTM_READY_READ=
	exec {fd}<"$fifo"
	IFS= read -r -d '' -t "$2" -u "$fd" ZDTM_READY_READ || ZDTM_READY_RC=$?
	exec {fd}<&-
	rm -f "$fifo"
	[ "$ZDTM_READY_RC" = 0 ] && [ -z "$ZDTM_READY_READ" ] && return 0
	# A NUL after other bytes is no ready byte either.
	[ "$ZDTM_READY_RC" != 0 ] || ZDTM_READY_RC=1
	return 1
}

# zdtm_lazy_start_daemon DAEMON: start it in the background on ZDTM_IMG and wait for its
# ready byte (exactly one NUL on --status-fd, then EOF).
zdtm_lazy_start_daemon() {
	local daemon=$1 fifo=$ZDTM_DIR/ready.fifo byte rc
	ZDTM_DAEMON=$daemon
	ZDTM_DRC=
	mkdir -p "$ZDTM_WORK"
	rm -f "$fifo" "$ZDTM_STATS"
	mkfifo "$fifo" || { zdtm_fail "mkfifo $fifo"; return 1; }
	# With ZDTM_LAZY_RELATIVE=1 the daemon gets -D and -W relative to its cwd, ZDTM_DIR.
	local dir=$ZDTM_IMG work=$ZDTM_WORK cwd=$PWD
	if [ "${ZDTM_LAZY_RELATIVE:-0}" = 1 ]; then
		cwd=$ZDTM_DIR
		dir=$(realpath --relative-to="$cwd" "$ZDTM_IMG")
		work=$(realpath --relative-to="$cwd" "$ZDTM_WORK")
	fi
	case $daemon in
	ours)
		[ -x "$LAZY_UFFD" ] || { zdtm_fail "$LAZY_UFFD is not built"; return 1; }
		(cd "$cwd" && exec "${ZDTM_DST_NS[@]}" "${ZDTM_DAEMON_WRAP[@]}" "$LAZY_UFFD" daemon -D "$dir" \
			-W "$work" -o lazy.log -v"${ZDTM_VERBOSITY:-4}" \
			--status-fd 9 --stats "$ZDTM_STATS" "${ZDTM_DAEMON_ARGS[@]}") 9>"$fifo" </dev/null \
			>"$ZDTM_DIR/daemon.out" 2>&1 3>&- &
		;;
	criu)
		(cd "$cwd" && exec "${ZDTM_DST_NS[@]}" "${ZDTM_DAEMON_WRAP[@]}" "$CRIU" lazy-pages -D "$dir" \
			-W "$work" -o lazy.log -v"${ZDTM_VERBOSITY:-4}" \
			--status-fd 9 "${ZDTM_DAEMON_ARGS[@]}") 9>"$fifo" </dev/null >"$ZDTM_DIR/daemon.out" 2>&1 3>&- &
		;;
	*)
		zdtm_fail "unknown lazy-pages daemon '$daemon' (ours or criu)"
		return 1
		;;
	esac
	ZDTM_DPID=$!
	if ! zdtm_read_ready "$fifo" "$ZDTM_READY_TIMEOUT"; then
		rc=$ZDTM_READY_RC byte=$ZDTM_READY_READ
		if ((rc > 128)); then
			zdtm_fail "$daemon lazy-pages daemon: no ready byte in ${ZDTM_READY_TIMEOUT}s${byte:+ (read '$byte')}"
			return 1
		fi
		# EOF (or bytes without a NUL): the fd closes before the process is gone.
		if ZDTM_LAZY_TIMEOUT=$ZDTM_READY_TIMEOUT zdtm_lazy_wait >/dev/null; then
			zdtm_fail "$daemon lazy-pages daemon exited ($ZDTM_DRC) before it was ready${byte:+ (it wrote '$byte')}"
		else
			zdtm_fail "$daemon lazy-pages daemon closed its --status-fd without the ready byte${byte:+ (it wrote '$byte')}"
		fi
		return 1
	fi
	[ -S "$ZDTM_WORK/lazy-pages.socket" ] ||
		{ zdtm_fail "ready byte came, but there is no $ZDTM_WORK/lazy-pages.socket"; return 1; }
}

# zdtm_lazy_start_detached DAEMON: start it with --daemon --pidfile lazy.pid: the command
# must exit 0 once the socket listens, and the pidfile (relative to -W, decimal, no
# newline) must name the running daemon, which is not our child (ZDTM_DDPID).
zdtm_lazy_start_detached() {
	local daemon=$1 rc=0 pid
	ZDTM_DAEMON=$daemon
	mkdir -p "$ZDTM_WORK"
	case $daemon in
	ours)
		"$LAZY_UFFD" daemon -D "$ZDTM_IMG" -W "$ZDTM_WORK" -o lazy.log -v4 --daemon \
			--pidfile lazy.pid --stats "$ZDTM_STATS" </dev/null >"$ZDTM_DIR/daemon.out" 2>&1 3>&- ||
			rc=$?
		;;
	criu)
		"$CRIU" lazy-pages -D "$ZDTM_IMG" -W "$ZDTM_WORK" -o lazy.log -v4 --daemon \
			--pidfile lazy.pid </dev/null >"$ZDTM_DIR/daemon.out" 2>&1 3>&- || rc=$?
		;;
	esac
	[ "$rc" = 0 ] || { zdtm_fail "$daemon lazy-pages --daemon exited $rc"; return 1; }
	[ -S "$ZDTM_WORK/lazy-pages.socket" ] ||
		{ zdtm_fail "$daemon lazy-pages --daemon returned before $ZDTM_WORK/lazy-pages.socket existed"; return 1; }
	pid=$(cat "$ZDTM_WORK/lazy.pid" 2>/dev/null)
	[[ $pid =~ ^[0-9]+$ ]] ||
		{ zdtm_fail "pidfile $ZDTM_WORK/lazy.pid: '$pid' is not a decimal pid without a newline"; return 1; }
	ZDTM_DDPID=$pid
	zdtm_alive "$ZDTM_DDPID" || { zdtm_fail "daemon $ZDTM_DDPID from the pidfile is not running"; return 1; }
}

# zdtm_lazy_wait_detached: wait (bounded) for the detached daemon to go; no exit status
# can be had, so its log must say nothing went wrong.
zdtm_lazy_wait_detached() {
	local i errs
	for ((i = 0; i < ZDTM_LAZY_TIMEOUT * 20; i++)); do
		zdtm_alive "$ZDTM_DDPID" || break
		sleep 0.05
	done
	zdtm_alive "$ZDTM_DDPID" &&
		{ zdtm_fail "detached daemon $ZDTM_DDPID still runs ${ZDTM_LAZY_TIMEOUT}s later"; return 1; }
	errs=$(zdtm_lazy_errors "$ZDTM_WORK/lazy.log")
	[ -z "$errs" ] || { zdtm_fail "$ZDTM_DAEMON daemon log has errors: $errs"; return 1; }
}

# zdtm_lazy_restore DAEMON [CRIU ARGS...]
zdtm_lazy_restore() {
	local daemon=$1
	shift
	zdtm_lazy_start_daemon "$daemon" || return 1
	ZDTM_RWORK=$ZDTM_WORK
	zdtm_restore -W "$ZDTM_WORK" --lazy-pages "$@"
}

# zdtm_lazy_wait: wait (bounded) for the daemon to exit and reap it into ZDTM_DRC.
zdtm_lazy_wait() {
	local i
	[ -n "$ZDTM_DPID" ] || return 0
	for ((i = 0; i < ZDTM_LAZY_TIMEOUT * 20; i++)); do
		zdtm_alive "$ZDTM_DPID" || break
		sleep 0.05
	done
	if zdtm_alive "$ZDTM_DPID"; then
		zdtm_fail "$ZDTM_DAEMON lazy-pages daemon (pid $ZDTM_DPID) still runs ${ZDTM_LAZY_TIMEOUT}s later"
		return 1
	fi
	ZDTM_DRC=0
	wait "$ZDTM_DPID" || ZDTM_DRC=$?
	ZDTM_DPID=
}

# zdtm_lazy_errors LOG: the Error lines of a daemon log, less criu's harmless one.
zdtm_lazy_errors() {
	grep -E 'Error' "$1" | grep -v "rlimit: Can't setup RLIMIT_NOFILE" || true
}

# zdtm_lazy_stats_served FILE: pages_fault + pages_background over all tasks.
zdtm_lazy_stats_served() {
	grep -oE '"pages_(fault|background)": *[0-9]+' "$1" |
		awk -F: '{ s += $2 } END { print s + 0 }'
}

# zdtm_lazy_check_daemon: what the daemon must end with.
zdtm_lazy_check_daemon() {
	local log=$ZDTM_WORK/lazy.log errs served
	[ -n "$ZDTM_DRC" ] || { zdtm_fail "the daemon was not waited for"; return 1; }
	[ "$ZDTM_DRC" = 0 ] || { zdtm_fail "$ZDTM_DAEMON lazy-pages daemon exited $ZDTM_DRC"; return 1; }
	# Below -v4 a clean run may log nothing at all; the file must still be where -W says.
	[ -s "$log" ] || { [ "${ZDTM_VERBOSITY:-4}" -lt 4 ] && [ -e "$log" ]; } ||
		{ zdtm_fail "no daemon log at $log (-o is relative to -W)"; return 1; }
	errs=$(zdtm_lazy_errors "$log")
	[ -z "$errs" ] || { zdtm_fail "$ZDTM_DAEMON daemon log has errors: $errs"; return 1; }
	[ "$ZDTM_DAEMON" = ours ] || return 0
	[ -s "$ZDTM_STATS" ] || { zdtm_fail "no --stats file $ZDTM_STATS"; return 1; }
	served=$(zdtm_lazy_stats_served "$ZDTM_STATS")
	[ "$served" -gt 0 ] ||
		{ zdtm_fail "no page was served lazily (pages_fault + pages_background = $served): an eager restore?"; return 1; }
}

# zdtm_lazy_exercised [quiet]: no --expect-lazy probe found its memory all present
# (OUTFILE.inconclusive, OUTFILE.<name>.inconclusive); else print why and fail.
zdtm_lazy_exercised() {
	local f
	for f in "$ZDTM_OUT".inconclusive "$ZDTM_OUT".*.inconclusive; do
		[ -e "$f" ] || continue
		[ "${1:-}" = quiet ] && return 1
		zdtm_fail "not exercised: $(cat "$f")"
		return 1
	done
	return 0
}

# zdtm_lazy_check: what a lazy restore must end with.
zdtm_lazy_check() {
	zdtm_lazy_check_daemon || return 1
	zdtm_lazy_exercised
}

zdtm_lazy_finish() {
	zdtm_lazy_wait || return 1
	zdtm_lazy_check
}

# zdtm_show_totals DIR: "present P parent Q" summed over the tasks of `lazy-uffd show DIR`,
# after checking its first line says how many parents there are (ZDTM_SHOW_PARENTS).
zdtm_show_totals() {
	local out
	out=$("$LAZY_UFFD" show "$1") || { echo "lazy-uffd show $1 failed"; return 1; }
	if [[ ! $(head -n 1 <<<"$out") =~ ^images\ .*\ parents\ ${ZDTM_SHOW_PARENTS}$ ]]; then
		echo "lazy-uffd show $1: want $ZDTM_SHOW_PARENTS parents: $(head -n 1 <<<"$out")"
		return 1
	fi
	awk '$1 == "total" { for (i = 2; i < NF; i++) { if ($i == "present") p += $(i + 1);
		if ($i == "parent") q += $(i + 1) } }
	     END { printf "present %d parent %d\n", p, q }' <<<"$out"
}

# zdtm_mkchain FLAGS LEVELS [MKPARENT OPTIONS for b -> a...]
zdtm_mkchain() {
	local flags=$1 levels=$2 mk=$LU_BUILD/test/tools/mkparent chain=$ZDTM_DIR/chain
	shift 2
	local out want got orig p q
	[ -x "$mk" ] || { zdtm_fail "$mk is not built ('make $mk')"; return 1; }
	rm -rf "$chain"
	mkdir -p "$chain"
	ZDTM_SHOW_PARENTS=0
	orig=$(zdtm_show_totals "$ZDTM_DIR/img") || { zdtm_fail "$orig"; return 1; }
	# b -> a: runs of 16 pages alternate; c -> b: runs of 12, the other phase, so c's
	# parent runs cover pages that b has and pages that b itself has in a. a's pages
	# files get other ids than b's (pages-1001.img for pages-1.img): the parent's own
	# pagemap head says which file to read.
	out=$("$mk" --flags "$flags" --split 16 --phase 0 --renumber-parent 1000 "$@" \
		"$ZDTM_DIR/img" "$chain/a" "$chain/b" 2>&1) ||
		{ zdtm_fail "mkparent b -> a failed: $out"; return 1; }
	ZDTM_IMG=$chain/b
	if [ "$levels" = 2 ]; then
		out=$("$mk" --flags "$flags" --split 12 --phase 1 "$chain/b" "$chain/b" "$chain/c" 2>&1) ||
			{ zdtm_fail "mkparent c -> b failed: $out"; return 1; }
		ZDTM_IMG=$chain/c
	fi
	want=$(sed -n 's/^total: //p' <<<"$out")
	ZDTM_SHOW_PARENTS=$levels
	got=$(zdtm_show_totals "$ZDTM_IMG") || { zdtm_fail "$got"; return 1; }
	[ "$got" = "$want" ] || { zdtm_fail "lazy-uffd show $ZDTM_IMG says '$got', mkparent made '$want'"; return 1; }
	# Nothing lost: what is present now or in a parent was present in the dump.
	read -r _ p _ q <<<"$got"
	[ "$q" -gt 0 ] && [ "present $((p + q)) parent 0" = "$orig" ] ||
		{ zdtm_fail "chain $ZDTM_IMG: '$got', but the dump had '$orig'"; return 1; }
}

# zdtm_dump_has_lazy DIR: the images in DIR have at least one PE_LAZY page.
zdtm_dump_has_lazy() {
	"$LAZY_UFFD" show "$1" | awk '$1 == "total" { for (i = 2; i < NF; i++) if ($i == "lazy") n += $(i + 1) }
		END { exit !(n > 0) }'
}

# zdtm_lazy_cycle DAEMON PROG [ARGS...]: start, dump, lazy restore, stop (no verdict).
# Returns 2, before the restore, when the dump has no lazy page at all (see zdtm_run_lazy).
# ZDTM_AFTER_DUMP, if set, is a command run between the dump and the restore (word split:
# "zdtm_mkchain lazy-parent 2").
zdtm_lazy_cycle() {
	local daemon=$1
	shift
	zdtm_start "$@" --expect-lazy --settle || return 1
	zdtm_dump || return 1
	if ! zdtm_dump_has_lazy "$ZDTM_IMG"; then
		echo "zdtm: criu dump marked no page lazy ($("$LAZY_UFFD" show "$ZDTM_IMG" | grep -m1 total))"
		return 2
	fi
	if [ -n "${ZDTM_AFTER_DUMP:-}" ]; then
		$ZDTM_AFTER_DUMP || return 1
	fi
	zdtm_lazy_restore "$daemon" || return 1
	zdtm_stop
}

# zdtm_lazy_reset: forget one finished cycle (its processes by pid, its files) so that
# another can run in the same test; the namespace prefixes and daemon arguments stay.
zdtm_lazy_reset() {
	local comm=${ZDTM_PROG##*/}
	zdtm_kill "${ZDTM_RPID:-}" "$comm"
	zdtm_kill "${ZDTM_PID:-}" "$comm"
	zdtm_kill "${ZDTM_LAUNCHER:-}" unshare
	[ -n "${ZDTM_DPID:-}" ] && zdtm_kill "$ZDTM_DPID" "$(zdtm_daemon_comm)"
	ZDTM_PID= ZDTM_RPID= ZDTM_LAUNCHER= ZDTM_RWORK= ZDTM_DAEMON= ZDTM_DPID= ZDTM_DRC=
	ZDTM_IMG=$ZDTM_DIR/img
	rm -rf "$ZDTM_PIDFILE" "$ZDTM_OUT" "$ZDTM_OUT".* "$ZDTM_ERR" "$ZDTM_IMG" "$ZDTM_WORK" \
		"$ZDTM_STATS" "$ZDTM_DIR/chain"
	mkdir -p "$ZDTM_IMG"
}

# zdtm_criu_lost_race: CRIU's own daemon failed in one of its known races, which happen
# with any page source; such an attempt proves nothing about ours. Sets ZDTM_CRIU_RACE.
# - Its lazy-pages client sends requests on a non-blocking socket and gives up when
#   send() says EAGAIN ("Can't send PSI 7 to server: Resource temporarily unavailable"),
#   when it queues requests faster than a server busy sending an answer reads them (seen
#   once in ~250 runs, CRIU 4.2, our page server, 41 tasks).
# - It answers a REMOVE event (MADV_DONTNEED) with UFFDIO_UNREGISTER of the range once it
#   gets to it; when the range was unmapped meanwhile and a VMA lies above it, the kernel
#   says EINVAL and the daemon gives up. Seen 3 times in 100 runs of the threads test
#   against a remote page server: a thread drops its stack with MADV_DONTNEED on exit, and
#   the main thread's pthread_join munmaps it (glibc's stack cache is full) before the
#   daemon, busy with the network, handled the event.
zdtm_criu_lost_race() {
	local log=$ZDTM_WORK/lazy.log
	ZDTM_CRIU_RACE=
	[ "$ZDTM_DAEMON" = criu ] && [ -f "$log" ] || return 1
	if grep -qE "Can't send PSI [0-9]+ to server: Resource temporarily unavailable" "$log"; then
		ZDTM_CRIU_RACE="criu lazy-pages gave up on EAGAIN from its own send()"
	elif awk '/ REMOVE: [0-9a-f]+\(/ { sub(/.* REMOVE: /, ""); sub(/\(.*/, ""); removed[$0] = 1 }
		  /uffd: Failed to unregister \([0-9a-f]+ - [0-9a-f]+\): Invalid argument/ {
			sub(/.*unregister \(/, ""); sub(/ - .*/, ""); if ($0 in removed) found = 1 }
		  END { exit !found }' "$log"; then
		ZDTM_CRIU_RACE="criu lazy-pages gave up unregistering a REMOVE range unmapped meanwhile (EINVAL)"
	fi
	[ -n "$ZDTM_CRIU_RACE" ]
}

# zdtm_run_lazy DAEMON PROG [ARGS...]: a lazy cycle that must PASS, and a clean daemon exit.
# A run whose --expect-lazy probes found their memory already there (a busy machine sent
# SIGTERM late) proves nothing either way: it runs again, up to ZDTM_LAZY_ATTEMPTS (3)
# times in all, then fails.
zdtm_run_lazy() {
	local n rc
	for ((n = 1; ; n++)); do
		rc=0
		zdtm_lazy_cycle "$@" || rc=$?
		if [ "$rc" = 2 ] && ((n < ${ZDTM_LAZY_ATTEMPTS:-3})); then
			# Seen about once in 50 runs on a loaded machine, with criu 4.1 and 4.2: a
			# plain dump whose pagemap has no PE_LAZY entry. criu then restores it
			# eagerly, which proves nothing about lazy pages; not ours to fix: dump again.
			echo "zdtm: attempt $n: no lazy page in the dump; again"
			zdtm_lazy_reset
			continue
		fi
		if ! { [ "$rc" = 0 ] && zdtm_expect_pass && zdtm_lazy_wait && zdtm_lazy_check_daemon; }; then
			if zdtm_criu_lost_race && ((n < ${ZDTM_LAZY_ATTEMPTS:-3})); then
				echo "zdtm: attempt $n: $ZDTM_CRIU_RACE; again"
				zdtm_lazy_reset
				continue
			fi
			return 1
		fi
		zdtm_lazy_exercised quiet && return 0
		if ((n >= ${ZDTM_LAZY_ATTEMPTS:-3})); then
			zdtm_lazy_exercised
			echo "(after $n attempts)"
			return 1
		fi
		echo "zdtm: attempt $n did not exercise the lazy path: $(cat "$ZDTM_OUT".*inconclusive | head -n 1); again"
		zdtm_lazy_reset
	done
}

zdtm_teardown() {
	local comm=${ZDTM_PROG##*/}
	# A restore that failed half way may have left its pidfile and a running tree.
	if [ -z "${ZDTM_RPID:-}" ] && [ -n "${ZDTM_DIR:-}" ]; then
		ZDTM_RPID=$(cat "${ZDTM_RWORK:-$ZDTM_IMG}/restored.pid" 2>/dev/null) || ZDTM_RPID=
	fi
	zdtm_kill "${ZDTM_RPID:-}" "$comm"
	zdtm_kill "${ZDTM_PID:-}" "$comm"
	zdtm_kill "${ZDTM_LAUNCHER:-}" unshare
	[ -n "${ZDTM_DPID:-}" ] && zdtm_kill "$ZDTM_DPID" "$(zdtm_daemon_comm)"
	[ -n "${ZDTM_DDPID:-}" ] && zdtm_kill "$ZDTM_DDPID" "$(zdtm_daemon_comm)"
	# Remote runs: the source side's processes and the network namespaces (remote.bash).
	if declare -F zdtm_remote_teardown >/dev/null; then
		zdtm_remote_teardown
	fi
	# Big images go now rather than at the end of the run.
	[ -n "${ZDTM_DIR:-}" ] && rm -rf "$ZDTM_DIR/img" "$ZDTM_DIR/chain" "$ZDTM_WORK"
	[ -n "${ZDTM_IMG:-}" ] && rm -rf "$ZDTM_IMG"
	return 0
}
