# Helpers for the plugin's integration tests: `load ../lib`, `load ../zdtm/zdtm`, then
# `load lu_plugin`. A zdtm program is started under a name unique to the test (so
# "no process of the restored tree survives" can be checked by name without touching
# anyone else's), dumped, and restored lazily with our daemon, optionally under
# test/tools/no-uffd (userfaultfd(2) refused) and with the plugin.
#
#   pl_setup / pl_teardown        per-test state (call from setup/teardown)
#   pl_start PROG [ARGS...]       zdtm_start under a unique name (PL_NAME)
#   pl_daemon [ours|criu] [CMD PREFIX...]
#                                 start a lazy-pages daemon on ZDTM_IMG, wait until ready
#   pl_restore [PREFIX...] -- [CRIU ARGS...]
#                                 criu restore -d --lazy-pages (PL_RC, ZDTM_RPID, PL_SECS)
#   pl_finish                     SIGTERM the restored root, require PASS and a daemon exit 0
#   pl_no_survivor                no process named PL_NAME exists
#   pl_fresh_run CMD...           run CMD with an empty tmpfs on /run (no kdat cache)
#   pl_nodev / pl_gone / pl_null CMD...
#                                 run CMD where /dev/userfaultfd is a mode-0000 copy on a
#                                 nodev mount / absent / /dev/null (test/plugin/hide-device)

NO_UFFD=$LU_BUILD/test/tools/no-uffd
PL_SO=$LU_BUILD/lazy_uffd.so
PL_LOG_TIMEOUT=${PL_LOG_TIMEOUT:-60}

pl_setup() {
	lu_require_root || return
	lu_require_criu || return
	[ -x "$NO_UFFD" ] || { lu_skip "$NO_UFFD is not built"; return; }
	[ -f "$PL_SO" ] || { lu_skip "$PL_SO is not built"; return; }
	[ -x "$LAZY_UFFD" ] || { lu_skip "$LAZY_UFFD is not built"; return; }
	[ -c /dev/userfaultfd ] || { lu_skip "no /dev/userfaultfd here (Linux >= 6.1 needed)"; return; }
	zdtm_setup
	PL_DIR=$BATS_TEST_TMPDIR/plugins
	mkdir -p "$PL_DIR"
	cp "$PL_SO" "$PL_DIR/"
	PL_NAME=
	PL_DPID=
	PL_DCOMM=
	PL_DRC=
	PL_RC=
	PL_LOG=$ZDTM_IMG/restore.log
}

pl_teardown() {
	local p
	if [ -n "${PL_DPID:-}" ] && [ "$(cat /proc/"$PL_DPID"/comm 2>/dev/null)" = "$PL_DCOMM" ]; then
		kill -KILL "$PL_DPID" 2>/dev/null
	fi
	# A restored tree left behind by a failed test: its pids, found by the unique name.
	if [ -n "${PL_NAME:-}" ]; then
		for p in $(pgrep -x "$PL_NAME"); do
			kill -KILL "$p" 2>/dev/null
		done
	fi
	zdtm_teardown
}

# pl_start PROG [ARGS...]: the program runs as PL_NAME (a symlink: comm comes from it).
pl_start() {
	local prog=$1 bin=$BATS_TEST_TMPDIR/build
	shift
	PL_NAME=lu$((RANDOM % 10000))-${prog:0:8}
	mkdir -p "$bin/zdtm"
	[ -x "$LU_BUILD/zdtm/$prog" ] || { echo "$LU_BUILD/zdtm/$prog is not built"; return 1; }
	ln -sf "$LU_BUILD/zdtm/$prog" "$bin/zdtm/$PL_NAME"
	LU_BUILD=$bin zdtm_start "$PL_NAME" "$@"
}

# pl_daemon [ours|criu] [CMD PREFIX...]: the daemon, on ZDTM_IMG (work dir = images dir).
pl_daemon() {
	local which=${1:-ours} fifo=$BATS_TEST_TMPDIR/ready.fifo
	[ $# -gt 0 ] && shift
	rm -f "$fifo"
	mkfifo "$fifo"
	case $which in
	ours)
		PL_DCOMM=lazy-uffd
		"$@" "$LAZY_UFFD" daemon -D "$ZDTM_IMG" -o lazy.log -v4 --status-fd 9 \
			9>"$fifo" </dev/null >"$BATS_TEST_TMPDIR/daemon.out" 2>&1 3>&- &
		;;
	criu)
		PL_DCOMM=criu
		"$@" "$CRIU" lazy-pages -D "$ZDTM_IMG" -o lazy.log -v4 --status-fd 9 \
			9>"$fifo" </dev/null >"$BATS_TEST_TMPDIR/daemon.out" 2>&1 3>&- &
		;;
	esac
	PL_DPID=$!
	zdtm_read_ready "$fifo" "$ZDTM_READY_TIMEOUT" && return 0
	echo "the $which lazy-pages daemon did not get ready (read status $ZDTM_READY_RC${ZDTM_READY_READ:+, it wrote '$ZDTM_READY_READ'})"
	cat "$BATS_TEST_TMPDIR/daemon.out" "$ZDTM_IMG/lazy.log" 2>/dev/null | tail -n 20
	return 1
}

# pl_wait_daemon: reap the daemon (bounded) into PL_DRC.
pl_wait_daemon() {
	local i
	[ -n "$PL_DPID" ] || return 0
	for ((i = 0; i < PL_LOG_TIMEOUT * 20; i++)); do
		kill -0 "$PL_DPID" 2>/dev/null || break
		[ "$(awk '{ sub(/.*\) /, ""); print $1 }' /proc/"$PL_DPID"/stat 2>/dev/null)" = Z ] && break
		sleep 0.05
	done
	if kill -0 "$PL_DPID" 2>/dev/null &&
		[ "$(awk '{ sub(/.*\) /, ""); print $1 }' /proc/"$PL_DPID"/stat 2>/dev/null)" != Z ]; then
		echo "the daemon (pid $PL_DPID) still runs ${PL_LOG_TIMEOUT}s later: killed"
		pl_stop_daemon
		PL_DRC=timeout
		return 1
	fi
	PL_DRC=0
	wait "$PL_DPID" || PL_DRC=$?
	PL_DPID=
}

# pl_stop_daemon: the restore never reached the daemon (it failed first): kill it.
pl_stop_daemon() {
	[ -n "$PL_DPID" ] || return 0
	[ "$(cat /proc/"$PL_DPID"/comm 2>/dev/null)" = "$PL_DCOMM" ] && kill -KILL "$PL_DPID" 2>/dev/null
	wait "$PL_DPID" 2>/dev/null || true
	PL_DPID=
}

# pl_restore [PREFIX...] -- [CRIU ARGS...]: PL_RC is criu's status, PL_SECS how long.
pl_restore() {
	local pre=() start=$SECONDS
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		pre+=("$1")
		shift
	done
	[ $# -gt 0 ] && shift
	PL_RC=0
	ZDTM_RPID=
	timeout 120 "${pre[@]}" "$CRIU" restore -d -D "$ZDTM_IMG" --lazy-pages -o restore.log -v4 \
		--pidfile restored.pid "$@" </dev/null >"$BATS_TEST_TMPDIR/restore.out" 2>&1 3>&- || PL_RC=$?
	PL_SECS=$((SECONDS - start))
	if [ "$PL_RC" = 0 ]; then
		ZDTM_RPID=$(cat "$ZDTM_IMG/restored.pid" 2>/dev/null)
	fi
	return 0
}

# pl_diag: what a failed test shows.
pl_diag() {
	echo "--- restore rc=$PL_RC daemon rc=$PL_DRC"
	grep -E 'lazy_uffd|Error|Warn' "$PL_LOG" 2>/dev/null | grep -v RLIMIT_NOFILE | tail -n 20
	tail -n 5 "$ZDTM_IMG/lazy.log" 2>/dev/null
	zdtm_diag
}

# pl_finish: the lazily restored program checks itself and PASSes; the daemon exits 0.
pl_finish() {
	[ "$PL_RC" = 0 ] || { echo "criu restore failed ($PL_RC)"; pl_diag; return 1; }
	zdtm_stop || { pl_diag; return 1; }
	zdtm_expect_pass || { pl_diag; return 1; }
	pl_wait_daemon
	[ "$PL_DRC" = 0 ] || { echo "the daemon exited $PL_DRC"; pl_diag; return 1; }
}

# pl_handed_over_restore PREFIX...: a 64M lazy restore with criu run under PREFIX (a
# cgroup that denies the device), userfaultfd(2) refused, and our daemon handing criu the
# device: byte-exact, every task's uffd made through the device.
pl_handed_over_restore() {
	pl_start anon --size 64M
	zdtm_dump
	pl_daemon ours
	pl_restore "$@" "$NO_UFFD" --errno EPERM -- -L "$PL_DIR"
	pl_finish
	grep -q "lazy_uffd: userfaultfd(2) fails with EPERM: /dev/userfaultfd cannot be opened here (EPERM); the lazy-pages daemon handed us its fd" "$PL_LOG" ||
		{ pl_diag; false; }
	grep -q "handed /dev/userfaultfd to pid [0-9]* (criu restore, which could not open it itself)" "$ZDTM_IMG/lazy.log"
	# The tasks' uffds came through the device, not the refused syscall.
	[ "$(pl_count 'made by the userfaultfd syscall' "$PL_LOG")" = 0 ]
	[ "$(pl_count 'made through /dev/userfaultfd' "$PL_LOG")" -ge 1 ]
	grep -qE 'lazy-pages: register' "$PL_LOG"
}

pl_no_survivor() {
	local left
	left=$(pgrep -x "$PL_NAME" || true)
	[ -z "$left" ] || ps -o pid,ppid,stat,comm -p $left
	[ -z "$left" ] && return 0
	echo "processes of the restored tree survive: $left"
	return 1
}

# pl_count REGEX FILE: the number of lines matching.
pl_count() {
	grep -cE "$1" "$2" || true
}

pl_fresh_run() {
	unshare -m --propagation private sh -c 'mount -t tmpfs -o mode=0755 lu-run /run && exec "$@"' sh "$@"
}

# pl_nodev / pl_gone / pl_null CMD...: CMD where /dev/userfaultfd is unusable (hide-device).
PL_HIDE=$LU_TOP/test/plugin/hide-device

pl_nodev() {
	"$PL_HIDE" nodev "$@"
}

pl_gone() {
	"$PL_HIDE" gone "$@"
}

pl_null() {
	"$PL_HIDE" null "$@"
}
