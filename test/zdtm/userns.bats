#!/usr/bin/env bats
# Lazy restores into a new user namespace, the way a container runs: the zdtm program
# (its static build) runs through build/test/tools/ns-run as the init of new user, pid
# and mount namespaces, its root mapped to host uid UNS_UID, on a root of its own
# (UNS_ROOT: the program, /dev/null, /proc, /tmp and /out, no /dev/userfaultfd); criu,
# root outside, dumps and restores it (--root, as CRIU's zdtm runs its uns flavour).
#
# vm.unprivileged_userfaultfd is 0 for every test (teardown puts the old value back): a
# restored task in the user namespace is refused userfaultfd(2), which then needs
# CAP_SYS_PTRACE in the initial user namespace, while criu itself may call it. CRIU makes
# each task's uffd in the task, so without the plugin the restore fails; the plugin opens
# /dev/userfaultfd in criu (outside, as root) at init, keeps it in CRIU's fdstore, and a
# task refused the syscall makes its uffd through that fd. CRIU's usernsd, outside the
# user namespace, does the handshake, so EVENT_FORK is granted and forks are followed.

load ../lib
load zdtm

NS_RUN=$LU_BUILD/test/tools/ns-run
UNS_UID=100000
UNS_MAP=0:$UNS_UID:65536
BALLAST=256M

setup() {
	UNS_SYSCTL=
	UNS_LAUNCHER=
	zdtm_setup_lazy || return
	[ -x "$NS_RUN" ] || { lu_skip "$NS_RUN is not built"; return; }
	[ -f "$LU_BUILD/lazy_uffd.so" ] || { lu_skip "$LU_BUILD/lazy_uffd.so is not built"; return; }
	[ -c /dev/userfaultfd ] || { lu_skip "no /dev/userfaultfd here (Linux >= 6.1 needed)"; return; }
	UNS_SYSCTL=$(cat /proc/sys/vm/unprivileged_userfaultfd) || return
	echo 0 >/proc/sys/vm/unprivileged_userfaultfd || return
	UNS_ROOT=$BATS_TEST_TMPDIR/root
	UNS_HOSTPID=$BATS_TEST_TMPDIR/hostpid
	mkdir -p "$UNS_ROOT"/{proc,old,tmp,out,dev}
	mknod -m 666 "$UNS_ROOT/dev/null" c 1 3
	# The program writes its pidfile and outfile as root of the user namespace.
	chown "$UNS_UID:$UNS_UID" "$UNS_ROOT/out"
	ZDTM_PIDFILE=$UNS_ROOT/out/pid
	ZDTM_OUT=$UNS_ROOT/out/out
	ZDTM_DUMP_ARGS=(--root "$UNS_ROOT")
	ZDTM_RESTORE_ARGS=(--root "$UNS_ROOT")
	UNS_PLUGINS=$BATS_TEST_TMPDIR/plugins
	mkdir -p "$UNS_PLUGINS"
	cp "$LU_BUILD/lazy_uffd.so" "$UNS_PLUGINS/"
}

teardown() {
	if [ -n "${UNS_SYSCTL:-}" ]; then
		echo "$UNS_SYSCTL" >/proc/sys/vm/unprivileged_userfaultfd
	fi
	zdtm_teardown
	zdtm_kill "${UNS_LAUNCHER:-}" ns-run
}

# zdtm_start PROG [ARGS...], zdtm.bash's for this file: build/zdtm/PROG-static, copied
# into UNS_ROOT, started by ns-run with its pidfile and outfile in /out (UNS_ROOT/out
# here). ZDTM_PID is its pid as the host sees it (the one it writes itself is 1).
zdtm_start() {
	local prog=$1-static
	shift
	ZDTM_PROG=$LU_BUILD/zdtm/$prog
	[ -x "$ZDTM_PROG" ] || { echo "zdtm: $ZDTM_PROG is not built ('make $ZDTM_PROG')"; return 1; }
	cp "$ZDTM_PROG" "$UNS_ROOT/$prog"
	rm -f "$UNS_HOSTPID"
	setsid "$NS_RUN" --root "$UNS_ROOT" --map "$UNS_MAP" --hostpid "$UNS_HOSTPID" -- \
		"/$prog" --pidfile /out/pid --outfile /out/out "$@" </dev/null >/dev/null 2>"$ZDTM_ERR" 3>&- &
	ZDTM_LAUNCHER=$!
	UNS_LAUNCHER=$ZDTM_LAUNCHER
	zdtm_wait_ready "$prog" uns_started || return 1
	ZDTM_PID=$(cat "$UNS_HOSTPID")
	zdtm_alive "$ZDTM_PID" || { zdtm_fail "$prog: host pid $ZDTM_PID is not running"; return 1; }
	# What a container sees: its own root, uid 0 mapped, and no device node.
	[ "$(awk '{ print $1, $2, $3 }' /proc/"$ZDTM_PID"/uid_map)" = "0 $UNS_UID 65536" ] ||
		{ zdtm_fail "uid_map of $ZDTM_PID: $(cat /proc/"$ZDTM_PID"/uid_map)"; return 1; }
	[ "$(readlink /proc/"$ZDTM_PID"/ns/user)" != "$(readlink /proc/self/ns/user)" ] ||
		{ zdtm_fail "$prog runs in our user namespace"; return 1; }
	[ -c /proc/"$ZDTM_PID"/root/dev/null ] && [ ! -e /proc/"$ZDTM_PID"/root/dev/userfaultfd ] ||
		{ zdtm_fail "$prog's root is not UNS_ROOT: $(ls /proc/"$ZDTM_PID"/root/dev)"; return 1; }
}

# uns_started: the program wrote its pidfile and ns-run the host pid.
uns_started() {
	[ -s "$ZDTM_PIDFILE" ] && [ -s "$UNS_HOSTPID" ]
}

# uns_plugin_checks: the restored task was refused userfaultfd(2) and made its uffd
# through the device fd criu opened outside and kept; the handshake ran in usernsd.
uns_plugin_checks() {
	local log=$ZDTM_WORK/restore.log
	grep -q "lazy_uffd: userfaultfd(2) works here: CRIU's uffds come from it; /dev/userfaultfd, opened now and .* serves a restored task whose own userfaultfd(2) is refused (a user namespace)" "$log" ||
		{ zdtm_fail "no plugin init line in $log"; return 1; }
	grep -qE '^\([ 0-9.]+\) +1: lazy_uffd: uffd [0-9]+ from USERFAULTFD_IOC_NEW on /dev/userfaultfd, the fd criu opened at plugin init \(userfaultfd\(2\): EPERM\)$' "$log" ||
		{ zdtm_fail "task 1 made no uffd through the kept device fd"; return 1; }
	grep -qE '^\([ 0-9.]+\) +1: uns: calling uffd_api_ioctl' "$log" ||
		{ zdtm_fail "the handshake of task 1's uffd did not go through criu's usernsd"; return 1; }
	[ "$(grep -c 'made by the userfaultfd syscall' "$log")" = 0 ] ||
		{ zdtm_fail "a uffd came from the syscall"; return 1; }
}

@test "userns: lazy restore without the plugin fails: the restored task is refused userfaultfd(2)" {
	zdtm_start anon --size 16M
	zdtm_dump
	# Not in `run`'s subshell: the daemon must stay known to teardown.
	zdtm_lazy_start_daemon ours
	ZDTM_RWORK=$ZDTM_WORK
	run zdtm_restore -W "$ZDTM_WORK" --lazy-pages
	echo "$output"
	[ "$status" -ne 0 ]
	[[ ${lines[0]} == "zdtm: criu restore failed ("* ]]
	grep -E '^\([ 0-9.]+\) +1: Error \(criu/uffd.c:[0-9]+\): uffd: Unable to open an userfaultfd descriptor: Operation not permitted$' "$ZDTM_WORK/restore.log"
	grep -q 'Restoring FAILED' "$ZDTM_WORK/restore.log"
	! grep -q lazy_uffd "$ZDTM_WORK/restore.log"
	# Our daemon sees the restore give up and exits non-zero.
	zdtm_lazy_wait
	[ "$ZDTM_DRC" != 0 ]
	grep -q 'criu restore closed lazy-pages.socket before every task had sent its uffd' "$ZDTM_WORK/lazy.log"
	# The same images restore eagerly: only the lazy path is refused.
	ZDTM_DAEMON= ZDTM_RWORK=
	zdtm_restore
	zdtm_stop
	zdtm_expect_pass
}

@test "userns: lazy restore with the plugin (default mode): byte-exact; the task's uffd comes from the device fd criu kept" {
	ZDTM_RESTORE_ARGS+=(-L "$UNS_PLUGINS")
	zdtm_run_lazy ours anon --size 64M --ballast $BALLAST
	uns_plugin_checks
}

@test "userns: lazy restore with the plugin: a child and a grandchild forked after the restore read their lazy pages byte-exact" {
	ZDTM_RESTORE_ARGS+=(-L "$UNS_PLUGINS")
	zdtm_run_lazy ours forkcheck --ballast $BALLAST
	uns_plugin_checks
	# The daemon followed both forks (EVENT_FORK), each named by its host pid.
	[ "$(grep -c '"forked_from": *1' "$ZDTM_STATS")" = 2 ]
	grep -q "task 1's child forked after the restore is pid" "$ZDTM_WORK/lazy.log"
}

@test "userns: lazy restore with the plugin and criu lazy-pages: byte-exact" {
	ZDTM_RESTORE_ARGS+=(-L "$UNS_PLUGINS")
	zdtm_run_lazy criu anon --size 64M --ballast $BALLAST
	uns_plugin_checks
}
