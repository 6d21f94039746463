#!/usr/bin/env bats
# Unprivileged CRIU: `criu restore --unprivileged --lazy-pages` by a non-root user (uid and
# gid UP_ID, no passwd entry needed) whose criu has the capabilities CRIU documents for
# non-root use, given as ambient capabilities with setpriv (as `setcap ... criu` would):
# CAP_CHECKPOINT_RESTORE, and CAP_SYS_PTRACE for the dump (CRIU's NON-ROOT section).
# The zdtm program runs as that user too (no namespaces: criu cannot create them
# unprivileged), and that user's `criu dump --unprivileged` dumps it. Our daemon runs as
# the same user: lazy-pages.socket answers only its own uid or root.
#
# The program runs with no_new_privs (setpriv --nnp). This machine's bounding set lacks
# CAP_SYS_RESOURCE, so the dumped bounding set does too, and CRIU's restorer drops every
# capability missing from it with PR_CAPBSET_DROP, which the kernel refuses without
# CAP_SETPCAP even for one already gone: the restore fails ("Unable to drop capability
# 24") unless the dumped task had no_new_privs, when CRIU only warns. README: "Unprivileged
# criu".
#
# vm.unprivileged_userfaultfd is 0 and /dev/userfaultfd is granted to UP_ID's group (chgrp,
# 0660) only between the dump and the end of a test; teardown puts both back as they were.

load ../lib
load zdtm

UP_ID=47001
BALLAST=256M

setup() {
	UP_SYSCTL=
	UP_DEVMODE=
	UP_TOP=
	zdtm_setup_lazy || return
	command -v setpriv >/dev/null || { lu_skip "setpriv (util-linux) is not installed"; return; }
	[ -f "$LU_BUILD/lazy_uffd.so" ] || { lu_skip "$LU_BUILD/lazy_uffd.so is not built"; return; }
	[ -x "$LU_BUILD/test/tools/no-uffd" ] || { lu_skip "$LU_BUILD/test/tools/no-uffd is not built"; return; }
	[ -c /dev/userfaultfd ] || { lu_skip "no /dev/userfaultfd here (Linux >= 6.1 needed)"; return; }
	UP_SYSCTL=$(cat /proc/sys/vm/unprivileged_userfaultfd) || return
	UP_DEVMODE=$(stat -c '%u:%g %a' /dev/userfaultfd) || return
	echo 0 >/proc/sys/vm/unprivileged_userfaultfd || return
	# Everything the user touches, in a directory it can reach (the test's own is 0700
	# under root's).
	UP_TOP=$(mktemp -d /tmp/lu-unpriv.XXXXXX) || return
	chmod 0755 "$UP_TOP"
	ZDTM_DIR=$UP_TOP
	ZDTM_IMG=$ZDTM_DIR/img
	ZDTM_PIDFILE=$ZDTM_DIR/out/pid
	ZDTM_OUT=$ZDTM_DIR/out/out
	ZDTM_ERR=$ZDTM_DIR/test.err
	ZDTM_WORK=$ZDTM_DIR/work
	ZDTM_STATS=$ZDTM_WORK/stats.json
	mkdir -p "$ZDTM_DIR/out" "$ZDTM_DIR/plugins"
	chown "$UP_ID:$UP_ID" "$ZDTM_DIR/out"
	cp "$LU_BUILD/lazy_uffd.so" "$ZDTM_DIR/plugins/"
	UP_AS=(setpriv --reuid "$UP_ID" --regid "$UP_ID" --clear-groups)
	# criu dump as the user, with CAP_CHECKPOINT_RESTORE and CAP_SYS_PTRACE; each test
	# says how criu restore and the daemon run (up_restore_as).
	ZDTM_SRC_NS=("${UP_AS[@]}" --inh-caps +checkpoint_restore,+sys_ptrace
		--ambient-caps +checkpoint_restore,+sys_ptrace --)
	ZDTM_DUMP_ARGS=(--unprivileged)
	ZDTM_RESTORE_ARGS=(--unprivileged)
	# The old pid must be free (reaped, not only dead) for the restore.
	ZDTM_AFTER_DUMP=up_reaped
}

teardown() {
	if [ -n "${UP_SYSCTL:-}" ]; then
		echo "$UP_SYSCTL" >/proc/sys/vm/unprivileged_userfaultfd
	fi
	up_device_back
	zdtm_teardown
	[ -n "${UP_TOP:-}" ] && rm -rf "$UP_TOP"
	return 0
}

# up_restore_as CAPS [PREFIX...]: criu restore (and the daemon) as the user with CAPS
# (setpriv's list: +checkpoint_restore,...), inside PREFIX (env, no-uffd).
up_restore_as() {
	local caps=$1
	shift
	ZDTM_DST_NS=("$@" "${UP_AS[@]}" --inh-caps "$caps" --ambient-caps "$caps" --)
}

# up_grant_device: /dev/userfaultfd to the user's group, mode 0660 (README's command).
up_grant_device() {
	chgrp "$UP_ID" /dev/userfaultfd && chmod 0660 /dev/userfaultfd
}

up_device_back() {
	[ -n "${UP_DEVMODE:-}" ] || return 0
	chown "${UP_DEVMODE% *}" /dev/userfaultfd
	chmod "${UP_DEVMODE#* }" /dev/userfaultfd
}

up_reaped() {
	local i
	for ((i = 0; i < 200; i++)); do
		[ -e /proc/"$ZDTM_PID" ] || return 0
		sleep 0.05
	done
	zdtm_fail "pid $ZDTM_PID is still not reaped 10s after the dump"
}

# zdtm_start PROG [ARGS...], zdtm.bash's for this file: PROG as the user, with
# no_new_privs, as a session leader in the host's pid namespace (ZDTM_PID from its
# pidfile). The bats shell is its parent and reaps it once the dump killed it.
zdtm_start() {
	local prog=$1
	shift
	ZDTM_PROG=$LU_BUILD/zdtm/$prog
	[ -x "$ZDTM_PROG" ] || { echo "zdtm: $ZDTM_PROG is not built ('make $ZDTM_PROG')"; return 1; }
	# The user's dump and daemon write here (zdtm_lazy_reset makes them again as root).
	mkdir -p "$ZDTM_IMG" "$ZDTM_WORK"
	chown "$UP_ID:$UP_ID" "$ZDTM_IMG" "$ZDTM_WORK"
	# Only stdin, stdout and stderr: bats keeps files open in its own 0700 directory,
	# which the user's criu dump could not stat.
	(
		me=$BASHPID
		for fd in $(ls /proc/"$me"/fd); do
			((fd > 2)) && eval "exec $fd>&-"
		done
		exec "${UP_AS[@]}" --nnp -- setsid "$ZDTM_PROG" --pidfile "$ZDTM_PIDFILE" --outfile "$ZDTM_OUT" "$@"
	) </dev/null >/dev/null 2>"$ZDTM_ERR" &
	zdtm_wait_ready "$prog" test -s "$ZDTM_PIDFILE" || return 1
	ZDTM_PID=$(cat "$ZDTM_PIDFILE")
	zdtm_alive "$ZDTM_PID" || { zdtm_fail "$prog: pid $ZDTM_PID is not running"; return 1; }
	[ "$(awk '$1 == "Uid:" { print $2 }' /proc/"$ZDTM_PID"/status)" = "$UP_ID" ] ||
		{ zdtm_fail "$prog does not run as uid $UP_ID"; return 1; }
}

@test "unprivileged: criu restore --unprivileged --lazy-pages (CAP_CHECKPOINT_RESTORE) fails without the plugin; with it, refuses without EVENT_FORK" {
	local log=$ZDTM_WORK/restore.log
	zdtm_start anon --size 16M
	zdtm_dump
	up_reaped
	up_restore_as +checkpoint_restore
	zdtm_lazy_start_daemon ours
	ZDTM_RWORK=$ZDTM_WORK
	run zdtm_restore -W "$ZDTM_WORK" --lazy-pages
	echo "$output"
	[ "$status" -ne 0 ]
	grep -E "^\([ 0-9.]+\) +$ZDTM_PID: Error \(criu/uffd.c:[0-9]+\): uffd: Unable to open an userfaultfd descriptor: Operation not permitted$" "$log"
	zdtm_lazy_wait
	[ "$ZDTM_DRC" != 0 ]
	# The plugin and the device, but without CAP_SYS_PTRACE the kernel refuses EVENT_FORK:
	# the restore stops in plugin init, before any task exists, saying what to do.
	up_grant_device
	rm -f "$log"
	ZDTM_RESTORE_ARGS+=(-L "$ZDTM_DIR/plugins")
	run zdtm_restore -W "$ZDTM_WORK" --lazy-pages
	[ "$status" -ne 0 ]
	grep -E "Error \(plugin/plugin.c:[0-9]+\): lazy_uffd: criu restore --lazy-pages cannot work: /dev/userfaultfd: the kernel refuses EVENT_FORK \(it needs CAP_SYS_PTRACE\).*give criu CAP_SYS_PTRACE, or set LAZY_UFFD_ALLOW_NO_FORK_EVENT=1 if no restored process forks" "$log"
	! grep -q 'Forking task' "$log"
}

@test "unprivileged: with the plugin, the device granted to the user's group and LAZY_UFFD_ALLOW_NO_FORK_EVENT=1: byte-exact" {
	up_restore_as +checkpoint_restore env LAZY_UFFD_ALLOW_NO_FORK_EVENT=1
	ZDTM_RESTORE_ARGS+=(-L "$ZDTM_DIR/plugins")
	ZDTM_AFTER_DUMP="up_reaped_and_granted"
	zdtm_run_lazy ours anon --size 64M --ballast $BALLAST
	local log=$ZDTM_WORK/restore.log
	# The init line lists the events criu's uffds get, not what the device advertises.
	grep -qE "lazy_uffd: userfaultfd\(2\) fails with EPERM: CRIU's uffds will be made through /dev/userfaultfd, opened now and .*; of the events a lazy restore needs they get EVENT_REMAP EVENT_REMOVE EVENT_UNMAP \(no EVENT_FORK\)$" "$log"
	grep -qE "lazy_uffd: uffd [0-9]+ made through /dev/userfaultfd \(userfaultfd\(2\): EPERM\).* 0x4c: EVENT_REMAP EVENT_REMOVE EVENT_UNMAP$" "$log"
	# A bounding set short of a capability: CRIU warns, no_new_privs keeps it out.
	up_bnd_full || grep -qE "Warn .*Unable to drop capability [0-9]+ from bset: -1 \(but NO_NEW_PRIVS will drop it\)" "$log"
}

@test "unprivileged: criu with CAP_SYS_PTRACE too, userfaultfd(2) blocked by seccomp: a forked child and grandchild byte-exact through the plugin" {
	up_restore_as +checkpoint_restore,+sys_ptrace "$LU_BUILD/test/tools/no-uffd" --errno EPERM --
	ZDTM_RESTORE_ARGS+=(-L "$ZDTM_DIR/plugins")
	ZDTM_AFTER_DUMP="up_reaped_and_granted"
	zdtm_run_lazy ours forkcheck --ballast $BALLAST
	local log=$ZDTM_WORK/restore.log
	grep -qE "lazy_uffd: uffd [0-9]+ made through /dev/userfaultfd \(userfaultfd\(2\): EPERM\).* 0x4e: EVENT_FORK EVENT_REMAP EVENT_REMOVE EVENT_UNMAP$" "$log"
	grep -qE "lazy_uffd: userfaultfd\(2\) fails with EPERM: CRIU's uffds will be made through /dev/userfaultfd, opened now and .*; of the events a lazy restore needs they get EVENT_FORK EVENT_REMAP EVENT_REMOVE EVENT_UNMAP$" "$log"
	[ "$(grep -c 'made by the userfaultfd syscall' "$log")" = 0 ]
	[ "$(grep -c '"forked_from": *[1-9]' "$ZDTM_STATS")" = 2 ]
}

# up_bnd_full: our bounding set holds every capability this kernel knows.
up_bnd_full() {
	local last full bnd
	last=$(cat /proc/sys/kernel/cap_last_cap)
	full=$(printf '%x' $(((1 << (last + 1)) - 1)))
	bnd=$(awk '$1 == "CapBnd:" { sub(/^0+/, "", $2); print $2 }' /proc/self/status)
	[ "$bnd" = "$full" ]
}

up_reaped_and_granted() {
	up_reaped && up_grant_device
}
