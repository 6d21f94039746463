#!/usr/bin/env bats
# The daemon's event paths, scripted (test/tools/uffd-events.c): no criu, the harness
# plays criu restore's part on images it writes and orders forks, exits, layout changes
# and the daemon's death itself. Each case failed on the daemon before its fix (issue
# 16): a child forked after the restore read zeros or was left running, a bystander
# that got an exited task's pid was killed, faults deferred past 256 or met by ENOENT
# were never answered, a complete task's closed uffd kept waking the loop, a task that
# sent its uffd right after the accept() had no pid to be killed by; a fault on a page
# the copy thread had put in without waking it waited until that job ended, unwoken and
# counted under no cause (issue 19's CI run: perf.bats "faults by cause 335 != 336").

load ../lib

EVENTS=$LU_BUILD/test/tools/uffd-events

setup() {
	lu_require_root || return
	[ -x "$LAZY_UFFD" ] || { lu_skip "$LAZY_UFFD is not built"; return; }
	[ -x "$EVENTS" ] || { lu_skip "$EVENTS is not built"; return; }
}

# run_case NAME: the case passes, says so, and the daemon's log has no sign of a crash.
run_case() {
	local dir=$BATS_TEST_TMPDIR/$1
	run timeout 120 "$EVENTS" "$LAZY_UFFD" "$1" "$dir"
	if [ "$status" -eq 77 ]; then
		lu_skip "$output"
		return
	fi
	if [ "$status" -ne 0 ] || [ "$output" != "PASS $1" ]; then
		echo "$output"
		echo "--- $dir/work/lazy.log"
		tail -n 30 "$dir/work/lazy.log" 2>/dev/null
		return 1
	fi
	LOG=$dir/work/lazy.log
}

@test "events: a child orphaned right after its fork is killed when the daemon dies" {
	run_case fork-exit-kill
	grep -q "task 1's child forked after the restore is pid" "$LOG"
	grep -q "guard: killed 1 processes of the restored tree" "$LOG"
}

@test "events: the daemon killed before it looked for an orphaned child's pid: the guard finds and kills it" {
	run_case fork-exit-unclaimed
	grep -q "guard: pid [0-9]*, under pid [0-9]* with uffd-registered memory, is that child" "$LOG"
}

@test "events: the daemon dies with a forked child incomplete and its parent complete: both die" {
	run_case fork-complete-kill
	grep -q "task 1: all lazy pages copied" "$LOG"
	grep -q "guard: killed 2 processes of the restored tree" "$LOG"
}

@test "events: an exited task's pid given to a bystander: the guard does not kill it" {
	run_case pid-reuse
	grep -q "guard: killed 0 processes of the restored tree" "$LOG"
}

@test "events: 400 faults in a hole deferred behind a pending REMOVE are all answered" {
	run_case deferred-overflow
}

@test "events: a fault whose range moved away while it waited is woken (SIGSEGV there)" {
	run_case enoent-wake
}

@test "events: a fault on a page put in without a wake-up (as the copy thread does) is woken at once" {
	run_case present-wake
}

@test "events: a FORK read behind a fault the daemon fails on: the child dies with the tree" {
	run_case fork-in-failed-batch
	grep -q "task 1's child forked after the restore is pid" "$LOG"
	grep -q "killing restored task 1 (pid [0-9]*): its memory cannot be completed" "$LOG"
}

@test "events: a complete task's uffd closed while the guard holds a copy does not wake the daemon" {
	run_case complete-no-spin
	grep -q "task 1: all lazy pages copied" "$LOG"
}

@test "events: a uffd sent right after the daemon's accept() comes with the task's pid" {
	run_case creds-after-accept
}
