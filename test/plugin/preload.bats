#!/usr/bin/env bats
# Preload mode: LD_PRELOAD=lazy_uffd.so gives every criu command the device fallback,
# from before main() (CRIU's startup probe runs before any plugin could load), including
# the commands that load no plugins: criu check and CRIU's own criu lazy-pages.
# criu check runs with an empty /run, so no kdat cache (/run/criu.kdat) from an earlier
# run can answer for the probe.

load ../lib
load ../zdtm/zdtm
load lu_plugin

setup() {
	pl_setup
}

teardown() {
	pl_teardown
}

@test "preload: criu check --feature uffd-noncoop fails under the restriction, passes preloaded (EPERM)" {
	run pl_fresh_run "$NO_UFFD" --errno EPERM -- "$CRIU" check --feature uffd-noncoop
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"UFFD is not supported"* ]]
	run pl_fresh_run env LD_PRELOAD="$PL_SO" "$NO_UFFD" --errno EPERM -- "$CRIU" check --feature uffd-noncoop
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"uffd-noncoop is supported"* ]]
}

@test "preload: criu check --feature uffd-noncoop passes preloaded under ENOSYS; its probe logs the device path" {
	run pl_fresh_run env LD_PRELOAD="$PL_SO" "$NO_UFFD" --errno ENOSYS -- "$CRIU" check --feature uffd-noncoop \
		-v4 -o "$BATS_TEST_TMPDIR/check.log"
	[ "$status" -eq 0 ]
	grep -E 'lazy_uffd: uffd [0-9]+ made through /dev/userfaultfd \(userfaultfd\(2\): ENOSYS\)' "$BATS_TEST_TMPDIR/check.log"
	[ "$(pl_count 'Lazy pages are not (available|permitted)' "$BATS_TEST_TMPDIR/check.log")" = 0 ]
}

@test "preload: CRIU's own criu lazy-pages serves a restricted restore" {
	pl_start anon --size 64M
	zdtm_dump
	pl_daemon criu env LD_PRELOAD="$PL_SO" "$NO_UFFD" --errno EPERM --
	pl_restore env LD_PRELOAD="$PL_SO" "$NO_UFFD" --errno EPERM --
	pl_finish
	# Its startup probe went through the device, so it accepted the restore...
	grep -E 'lazy_uffd: uffd [0-9]+ made through /dev/userfaultfd \(userfaultfd\(2\): EPERM\)' "$ZDTM_IMG/lazy.log"
	# ...and so did the restore's: CRIU asked for the events itself.
	grep -qE '[0-9]+: lazy_uffd: uffd [0-9]+ made through /dev/userfaultfd \(userfaultfd\(2\): EPERM\); enabled the features CRIU asked for, 0x4e' "$PL_LOG"
	grep -q 'lazy-pages: register' "$PL_LOG"
}

@test "preload: without the preload CRIU's own criu lazy-pages refuses to start under the restriction" {
	pl_start anon --size 1M
	zdtm_dump
	local rc=0
	pl_daemon criu "$NO_UFFD" --errno EPERM -- || rc=$?
	[ "$rc" -ne 0 ]
	pl_wait_daemon
	[ "$PL_DRC" = 1 ]
}

@test "preload: preloaded and loaded with -L (the same file): redirected once, restore works" {
	pl_start anon --size 4M
	zdtm_dump
	pl_daemon ours
	pl_restore env LD_PRELOAD="$PL_SO" "$NO_UFFD" --errno EPERM -- -L "$(dirname "$PL_SO")"
	pl_finish
	[ "$(pl_count "criu's syscall\(\) goes through" "$PL_LOG")" = 1 ]
	[ "$(pl_count 'another copy of lazy_uffd' "$PL_LOG")" = 0 ]
	# The plugin stage still kept the device for the tasks.
	grep -q "CRIU's uffds will be made through /dev/userfaultfd, opened now" "$PL_LOG"
}

@test "preload: preloaded and a copy loaded with -L: the copy hands over to the preloaded one" {
	pl_start anon --size 4M
	zdtm_dump
	pl_daemon ours
	pl_restore env LD_PRELOAD="$PL_SO" "$NO_UFFD" --errno EPERM -- -L "$PL_DIR"
	pl_finish
	[ "$(pl_count "criu's syscall\(\) goes through" "$PL_LOG")" = 1 ]
	grep -q 'lazy_uffd: loaded for restore; another copy of lazy_uffd (preloaded) does the work' "$PL_LOG"
	grep -qE '[0-9]+: lazy_uffd: uffd [0-9]+ made through /dev/userfaultfd .*0x4e' "$PL_LOG"
}

@test "preload: in programs other than criu the library does nothing" {
	run env LD_PRELOAD="$PL_SO" "$NO_UFFD" --errno EPERM -- "$NO_UFFD" --probe
	[ "$status" -eq 0 ]
	[ "$output" = EPERM ]
	run env LD_PRELOAD="$PL_SO" sh -c 'echo fine'
	[ "$output" = fine ]
}
