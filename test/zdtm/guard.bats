#!/usr/bin/env bats
# The guard (lazy-pages/guard.c): when the daemon dies mid-population, the restored tree
# must be gone before it can read a missing page as zero. The daemon is stopped right
# after the restore (SIGSTOP, so the population is certainly unfinished), the program is
# told to check its memory, and the daemon is SIGKILLed: the program's reads of missing
# pages block on the uffd the guard still holds, and the guard kills the tree. Without the
# guard the kernel releases the uffd with the daemon and the missing pages read as zeros:
# with the guard taken out, the program died of a segfault in ld.so, on a pointer that
# read as zero (kernel log: "anon: segfault at 28 ... in ld-linux-x86-64.so.2"), and wrote
# no verdict; here that shows as the missing guard line.

load ../lib
load zdtm

setup() {
	zdtm_setup_lazy
}

teardown() {
	zdtm_teardown
}

# gone PID SECONDS: PID has exited (or is a zombie) within SECONDS.
gone() {
	local i
	for ((i = 0; i < $2 * 20; i++)); do
		zdtm_alive "$1" || return 0
		sleep 0.05
	done
	return 1
}

# kill_mid_population PROG [ARGS...]
kill_mid_population() {
	local log
	zdtm_start "$@" || return 1
	zdtm_dump || return 1
	zdtm_lazy_restore ours || return 1
	kill -STOP "$ZDTM_DPID" || { echo "the daemon was gone when the restore returned"; return 1; }
	log=$ZDTM_WORK/lazy.log
	# Every task must still have pages to come, so that the guard names each one (it
	# kills the whole tree either way, complete tasks too).
	if grep -E "task [0-9]+: all lazy pages copied|all tasks complete" "$log"; then
		echo "population got that far before the daemon could be stopped: nothing tested"
		return 1
	fi
	# The program checks its memory now: it faults on pages nobody will copy.
	kill -TERM "$ZDTM_RPID"
	sleep 0.2
	kill -KILL "$ZDTM_DPID"
	gone "$ZDTM_RPID" 15 || { echo "restored root $ZDTM_RPID still runs 15 s after the daemon died"; return 1; }
	zdtm_lazy_wait >/dev/null
	# Killed while blocked: no verdict at all, in particular no FAIL about a zero page.
	if [ -s "$ZDTM_OUT" ]; then
		echo "the program wrote a verdict after the daemon died: $(cat "$ZDTM_OUT")"
		return 1
	fi
	grep -E "Error .*guard: the daemon is gone with task 1 \(pid $ZDTM_RPID\) incomplete: killing the restored tree" "$log" ||
		{ echo "no guard line in $log:"; cat "$log"; return 1; }
}

@test "guard: daemon SIGKILLed mid-population: the tree is killed before it reads a missing page" {
	kill_mid_population anon --size 1G
}

@test "guard: daemon SIGKILLed mid-population: a tree of four processes, all killed" {
	# 256M each: at 64M the task populated first (the first uffd handed over; here it
	# was the root) took ~13 ms, and once (CI) was complete before `kill -STOP` got
	# there, outlived its children and said so.
	kill_mid_population tree --size 256M
	# The tree lived in its own pid namespace whose init was the restored root: nothing
	# of it can be left, children forked before the dump included.
	local p n
	for p in $(pgrep -s "$ZDTM_RPID"); do
		zdtm_alive "$p" && { echo "pid $p of session $ZDTM_RPID still runs"; return 1; }
	done
	n=$(grep -c "guard: the daemon is gone with task [0-9]* (pid [0-9]*) incomplete" "$ZDTM_WORK/lazy.log")
	[ "$n" = 4 ] || { echo "the guard killed $n tasks, not 4"; cat "$ZDTM_WORK/lazy.log"; return 1; }
}
