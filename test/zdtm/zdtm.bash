# Helpers for test/zdtm/*.bats: run one zdtm program through criu dump and restore.
# `load zdtm` after `load ../lib`. The contract of the programs is in lib/zdtmtst.h.
#
#   zdtm_start PROG [ARGS...]   start build/zdtm/PROG as init of a new pid namespace and
#                               session leader; wait for its pidfile (sets ZDTM_PID)
#   zdtm_dump [CRIU ARGS...]    criu dump -t ZDTM_PID -D ZDTM_IMG (the tree is killed)
#   zdtm_restore [CRIU ARGS...] criu restore -d -D ZDTM_IMG (sets ZDTM_RPID)
#   zdtm_stop                   SIGTERM the restored root, wait for its outfile and exit
#   zdtm_expect_pass            the outfile is exactly "PASS"
#   zdtm_run PROG [ARGS...]     all of the above
#   zdtm_diag                   print the tails of the criu logs and the outfiles
#   zdtm_teardown               SIGKILL what is left (by pid), remove the images
#
# Bounds (seconds): ZDTM_START_TIMEOUT (60), ZDTM_STOP_TIMEOUT (60).

ZDTM_START_TIMEOUT=${ZDTM_START_TIMEOUT:-60}
ZDTM_STOP_TIMEOUT=${ZDTM_STOP_TIMEOUT:-60}

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
	mkdir -p "$ZDTM_IMG"
}

# zdtm_diag: what a failed test should show.
zdtm_diag() {
	local f
	for f in "$ZDTM_IMG/dump.log" "$ZDTM_IMG/restore.log"; do
		[ -f "$f" ] || continue
		echo "--- tail of $f (errors first)"
		grep -E 'Error|Warn' "$f" | grep -v 'RLIMIT_NOFILE' | tail -n 10
		echo "..."
		tail -n 25 "$f"
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

# zdtm_start PROG [ARGS...]
zdtm_start() {
	local prog=$1 i
	shift
	ZDTM_PROG=$LU_BUILD/zdtm/$prog
	[ -x "$ZDTM_PROG" ] || { echo "zdtm: $ZDTM_PROG is not built ('make $ZDTM_PROG')"; return 1; }
	# stderr goes to a file only until zt_init() points it at /dev/null (option errors).
	setsid unshare -p -f setsid "$ZDTM_PROG" --pidfile "$ZDTM_PIDFILE" --outfile "$ZDTM_OUT" \
		"$@" </dev/null >/dev/null 2>"$ZDTM_ERR" 3>&- &
	ZDTM_LAUNCHER=$!
	for ((i = 0; i < ZDTM_START_TIMEOUT * 20; i++)); do
		if [ -s "$ZDTM_PIDFILE" ]; then
			ZDTM_PID=$(cat "$ZDTM_PIDFILE")
			zdtm_alive "$ZDTM_PID" && return 0
			zdtm_fail "$prog: pid $ZDTM_PID from the pidfile is not running"
			return 1
		fi
		if ! kill -0 "$ZDTM_LAUNCHER" 2>/dev/null; then
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
	"$CRIU" dump -t "$ZDTM_PID" -D "$ZDTM_IMG" -o dump.log -v4 "$@" >/dev/null 2>&1 || rc=$?
	[ "$rc" = 0 ] || { zdtm_fail "criu dump failed ($rc)"; return 1; }
	# Dumped trees are killed: wait for the old root to go, so its pid is free again.
	for ((i = 0; i < 200; i++)); do
		zdtm_alive "$ZDTM_PID" || return 0
		sleep 0.05
	done
	zdtm_fail "pid $ZDTM_PID still alive 10s after the dump"
}

# zdtm_restore [CRIU ARGS...]
zdtm_restore() {
	local rc=0
	"$CRIU" restore -d -D "$ZDTM_IMG" -o restore.log -v4 --pidfile restored.pid "$@" \
		</dev/null >/dev/null 2>&1 3>&- || rc=$?
	[ "$rc" = 0 ] || { zdtm_fail "criu restore failed ($rc)"; return 1; }
	ZDTM_RPID=$(cat "$ZDTM_IMG/restored.pid" 2>/dev/null)
	[ -n "$ZDTM_RPID" ] || { zdtm_fail "criu restore wrote no pidfile"; return 1; }
	zdtm_alive "$ZDTM_RPID" || { zdtm_fail "restored root $ZDTM_RPID is not running"; return 1; }
}

# zdtm_stop: SIGTERM the restored root; wait for the outfile, then for the exit.
zdtm_stop() {
	local i
	kill -TERM "$ZDTM_RPID" 2>/dev/null || { zdtm_fail "restored root $ZDTM_RPID is gone"; return 1; }
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

zdtm_teardown() {
	local comm=${ZDTM_PROG##*/}
	zdtm_kill "${ZDTM_RPID:-}" "$comm"
	zdtm_kill "${ZDTM_PID:-}" "$comm"
	zdtm_kill "${ZDTM_LAUNCHER:-}" unshare
	# Big images go now rather than at the end of the run.
	[ -n "${ZDTM_IMG:-}" ] && rm -rf "$ZDTM_IMG"
	return 0
}
