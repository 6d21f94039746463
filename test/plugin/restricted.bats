#!/usr/bin/env bats
# Lazy restores with userfaultfd(2) refused (test/tools/no-uffd: EPERM, as Docker's default
# seccomp profile, and ENOSYS): without the plugin criu cannot restore lazily (proof that
# the restriction bites); with `criu restore -L DIR` holding lazy_uffd.so the uffds come
# from /dev/userfaultfd, in each restored task, with the events CRIU needs, and our
# daemon serves the restore. The whole zdtm lazy suite under the restriction is in
# suite.bats.

load ../lib
load ../zdtm/zdtm
load lu_plugin

setup() {
	pl_setup
}

teardown() {
	pl_teardown
}

# without_plugin ERRNO: the restriction alone makes a lazy restore fail, in the task.
without_plugin() {
	local err=$1
	run "$NO_UFFD" --errno "$err" -- "$NO_UFFD" --probe
	[ "$output" = "$err" ]
	pl_start anon --size 1M
	zdtm_dump
	pl_daemon ours
	pl_restore "$NO_UFFD" --errno "$err" --
	[ "$PL_RC" -ne 0 ] || { pl_diag; false; }
	grep -q 'Unable to open an userfaultfd descriptor' "$PL_LOG" || { pl_diag; false; }
	pl_wait_daemon
	[ "$PL_DRC" -ne 0 ]
	pl_no_survivor
}

# with_plugin ERRNO PROG ARGS...: lazy restore through the device; PASS; one line per uffd.
with_plugin() {
	local err=$1
	shift
	pl_start "$@"
	zdtm_dump
	pl_daemon ours
	pl_restore "$NO_UFFD" --errno "$err" -- -L "$PL_DIR"
	pl_finish
	# Plugin init saw the refusal and kept the device for the tasks.
	grep -qE "lazy_uffd: userfaultfd\(2\) fails with $err: CRIU's uffds will be made through /dev/userfaultfd, opened now and (kept in CRIU's fdstore|handed to CRIU's inherit-fd list)" "$PL_LOG" ||
		{ pl_diag; false; }
	# No uffd came from the syscall.
	[ "$(pl_count 'made by the userfaultfd syscall' "$PL_LOG")" = 0 ]
}

# uffd_lines ERRNO: the per-uffd info lines of the tasks (log prefix "pid: ").
uffd_lines() {
	grep -E "^\([ 0-9.]+\) +[0-9]+: lazy_uffd: uffd [0-9]+ made through /dev/userfaultfd \(userfaultfd\(2\): $1\).* 0x4e: EVENT_FORK EVENT_REMAP EVENT_REMOVE EVENT_UNMAP$" "$PL_LOG"
}

@test "restricted EPERM: criu restore --lazy-pages without the plugin fails" {
	without_plugin EPERM
}

@test "restricted ENOSYS: criu restore --lazy-pages without the plugin fails" {
	without_plugin ENOSYS
}

@test "restricted EPERM: -L plugin: anon 64M restored lazily through /dev/userfaultfd, features 0x4e" {
	with_plugin EPERM anon --size 64M
	[ "$(uffd_lines EPERM | wc -l)" = 1 ]
	# The daemon really had to serve pages.
	grep -qE 'lazy-pages: register' "$PL_LOG"
}

@test "restricted ENOSYS: -L plugin: anon 64M restored lazily through /dev/userfaultfd, features 0x4e" {
	with_plugin ENOSYS anon --size 64M
	[ "$(uffd_lines ENOSYS | wc -l)" = 1 ]
}

@test "restricted EPERM: -L plugin: a tree of four processes, one device uffd per task" {
	with_plugin EPERM tree --size 1M
	# Each uffd is made in its own task: four distinct log pids.
	[ "$(uffd_lines EPERM | awk '{ print $2 }' | sort -u | wc -l)" = 4 ] || { uffd_lines EPERM; false; }
}

@test "restricted ENOSYS: -L plugin: eight threads" {
	with_plugin ENOSYS threads --size 4M
	[ "$(uffd_lines ENOSYS | wc -l)" = 1 ]
}

@test "restricted EPERM: LAZY_UFFD_MODE=syscall turns the plugin off" {
	pl_start anon --size 1M
	zdtm_dump
	pl_daemon ours
	pl_restore env LAZY_UFFD_MODE=syscall "$NO_UFFD" --errno EPERM -- -L "$PL_DIR"
	[ "$PL_RC" -ne 0 ]
	grep -q 'LAZY_UFFD_MODE=syscall: CRIU.s uffds are left to the userfaultfd syscall' "$PL_LOG"
	grep -q 'Unable to open an userfaultfd descriptor' "$PL_LOG"
	pl_wait_daemon
	pl_no_survivor
}

@test "unrestricted: the plugin changes nothing; each uffd still says it came from the syscall" {
	pl_start anon --size 4M
	zdtm_dump
	pl_daemon ours
	pl_restore -- -L "$PL_DIR"
	pl_finish
	grep -q 'lazy_uffd: userfaultfd(2) works here' "$PL_LOG"
	# Kept all the same, for a restored task whose own syscall is refused (issue 15).
	grep -q "serves a restored task whose own userfaultfd(2) is refused (a user namespace)" "$PL_LOG"
	[ "$(pl_count 'lazy_uffd: uffd [0-9]+ made by the userfaultfd syscall' "$PL_LOG")" = 1 ]
	[ "$(pl_count 'made through /dev/userfaultfd' "$PL_LOG")" = 0 ]
}

@test "unrestricted: LAZY_UFFD_MODE=device uses the device although the syscall works" {
	pl_start anon --size 4M
	zdtm_dump
	pl_daemon ours
	pl_restore env LAZY_UFFD_MODE=device -- -L "$PL_DIR"
	pl_finish
	grep -q "LAZY_UFFD_MODE=device: CRIU's uffds will be made through /dev/userfaultfd" "$PL_LOG"
	# CRIU's own probe worked, so it asked for the events itself.
	grep -qE 'uffd [0-9]+ made through /dev/userfaultfd \(LAZY_UFFD_MODE=device\); enabled the features CRIU asked for, 0x4e' "$PL_LOG"
}

@test "restricted EPERM: a bad LAZY_UFFD_MODE fails the restore in plugin init" {
	pl_start anon --size 1M
	zdtm_dump
	pl_daemon ours
	pl_restore env LAZY_UFFD_MODE=sometimes "$NO_UFFD" --errno EPERM -- -L "$PL_DIR"
	[ "$PL_RC" -ne 0 ]
	grep -q 'LAZY_UFFD_MODE=sometimes: expected auto, device or syscall' "$PL_LOG"
	pl_stop_daemon
	pl_no_survivor
}

@test "restricted EPERM: the plugin's GOT slots are put back at exit (restore of a plain process)" {
	# A non-lazy restore with the plugin: init redirects, exit restores; criu goes on
	# to exit normally (a stale slot would point into the unloaded plugin).
	pl_start anon --size 1M
	zdtm_dump
	run "$NO_UFFD" --errno EPERM -- "$CRIU" restore -d -D "$ZDTM_IMG" -o restore.log -v4 \
		--pidfile restored.pid -L "$PL_DIR"
	[ "$status" -eq 0 ] || { pl_diag; false; }
	ZDTM_RPID=$(cat "$ZDTM_IMG/restored.pid")
	grep -q 'lazy_uffd: loaded for restore' "$PL_LOG"
	grep -q "lazy_uffd: criu's syscall() and ioctl() GOT slots are back as they were" "$PL_LOG"
	zdtm_stop
	zdtm_expect_pass
}

@test "restricted EPERM: the device fd reaches the tasks through CRIU's fdstore (4.2: fdstore_add; 4.1: inherit-fd list)" {
	with_plugin EPERM anon --size 1M
	case $CRIU_SERIES in
	4.1)
		grep -q "opened now and handed to CRIU's inherit-fd list as lazy-uffd-device-[0-9]*, for its fdstore" "$PL_LOG"
		# CRIU moved it into its fdstore and the task took it back by key.
		grep -qE '[0-9]+: Found id lazy-uffd-device-[0-9]+ \(fd [0-9]+\) in inherit fd list' "$PL_LOG"
		;;
	4.2)
		grep -qE "opened now and kept in CRIU's fdstore \(id [0-9]+\)" "$PL_LOG"
		;;
	*)
		grep -qE "opened now and (kept in CRIU's fdstore|handed to CRIU's inherit-fd list)" "$PL_LOG"
		;;
	esac
}
