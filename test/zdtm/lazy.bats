#!/usr/bin/env bats
# Lazy restores of the zdtm programs of zdtm.bats: each one with our daemon
# (`lazy-uffd daemon`) and with CRIU's own `criu lazy-pages` on the same images, so the
# tests are proven against CRIU's daemon too. A run passes when the program writes
# PASS, the daemon exits 0 within ZDTM_LAZY_TIMEOUT with no Error in its log and, for
# our daemon, its --stats show pages served lazily (zdtm.bash: zdtm_run_lazy).

load ../lib
load zdtm

setup() {
	zdtm_setup_lazy
}

teardown() {
	zdtm_teardown
}

@test "zdtm lazy ours: anon 4K" {
	zdtm_run_lazy ours anon --size 4K
}

@test "zdtm lazy criu: anon 4K" {
	zdtm_run_lazy criu anon --size 4K
}

@test "zdtm lazy ours: anon 2M+4K (not THP aligned)" {
	zdtm_run_lazy ours anon --size 2M+4K
}

@test "zdtm lazy criu: anon 2M+4K (not THP aligned)" {
	zdtm_run_lazy criu anon --size 2M+4K
}

@test "zdtm lazy ours: anon 64M" {
	zdtm_run_lazy ours anon --size 64M
}

@test "zdtm lazy criu: anon 64M" {
	zdtm_run_lazy criu anon --size 64M
}

@test "zdtm lazy ours: anon 1G" {
	zdtm_run_lazy ours anon --size 1G
}

@test "zdtm lazy criu: anon 1G" {
	zdtm_run_lazy criu anon --size 1G
}

@test "zdtm lazy ours: sparse" {
	zdtm_run_lazy ours sparse
}

@test "zdtm lazy criu: sparse" {
	zdtm_run_lazy criu sparse
}

@test "zdtm lazy ours: zeropages" {
	zdtm_run_lazy ours zeropages
}

@test "zdtm lazy criu: zeropages" {
	zdtm_run_lazy criu zeropages
}

@test "zdtm lazy ours: tree" {
	zdtm_run_lazy ours tree
}

@test "zdtm lazy criu: tree" {
	zdtm_run_lazy criu tree
}

@test "zdtm lazy ours: threads" {
	zdtm_run_lazy ours threads
}

@test "zdtm lazy criu: threads" {
	zdtm_run_lazy criu threads
}

# --- drop-in: how the daemon is started -------------------------------------------

@test "zdtm lazy ours: -D and -W relative to the daemon's cwd" {
	ZDTM_LAZY_RELATIVE=1 zdtm_run_lazy ours anon --size 16M
}

@test "zdtm lazy criu: -D and -W relative to the daemon's cwd" {
	ZDTM_LAZY_RELATIVE=1 zdtm_run_lazy criu anon --size 16M
}

@test "zdtm lazy ours: a stale lazy-pages.socket in the work dir" {
	mkdir -p "$ZDTM_WORK"
	echo stale >"$ZDTM_WORK/lazy-pages.socket"
	zdtm_run_lazy ours anon --size 16M
}

@test "zdtm lazy criu: a stale lazy-pages.socket in the work dir" {
	mkdir -p "$ZDTM_WORK"
	echo stale >"$ZDTM_WORK/lazy-pages.socket"
	zdtm_run_lazy criu anon --size 16M
}

# --- images no lazy restore can serve right: refused before the restore starts -------
# A real dump of anon 64M, edited by build/test/tools/img-edit in one precise way.

# lazy_refused MSG: our daemon on the edited ZDTM_IMG exits 1 before it listens, with
# one Error line in its log, ending in MSG; criu restore --lazy-pages then fails before it
# forks any task (nothing listens on the socket), so no restored process runs on.
lazy_refused() {
	local log=$ZDTM_WORK/lazy.log err out=$ZDTM_DIR/start.out rc=0
	# Not in `run`'s subshell: a daemon that does start must stay known to teardown.
	zdtm_lazy_start_daemon ours >"$out" || rc=$?
	cat "$out"
	[ "$rc" -ne 0 ]
	[ "$(head -n 1 "$out")" = "zdtm: ours lazy-pages daemon exited (1) before it was ready" ]
	err=$(grep ' Error ' "$log")
	echo "daemon error: $err"
	[ "$(wc -l <<<"$err")" = 1 ]
	[[ $err == *"$1" ]]
	ZDTM_RWORK=$ZDTM_WORK
	run zdtm_restore -W "$ZDTM_WORK" --lazy-pages
	echo "$output"
	[ "$status" -ne 0 ]
	[[ ${lines[0]} == "zdtm: criu restore failed ("* ]]
	grep -q 'connect to lazy-pages.socket failed' "$ZDTM_WORK/restore.log"
	! grep -q 'Forking task' "$ZDTM_WORK/restore.log"
	[ ! -e "$ZDTM_WORK/restored.pid" ]
}

@test "zdtm lazy ours: lazy pages in a VMA the mm image marks MAP_LOCKED are refused before the restore" {
	local edit=$LU_BUILD/test/tools/img-edit out vma flags
	zdtm_start anon --size 64M
	zdtm_dump
	# The anon buffer: the VMA with the most lazy pages (16384), MAP_LOCKED added.
	out=$("$edit" vma-flags "$ZDTM_IMG" 1 0x2000)
	echo "img-edit: $out"
	[[ $out =~ ^vma\ (0x[0-9a-f]+-0x[0-9a-f]+)\ flags\ 0x[0-9a-f]+\ -\>\ (0x[0-9a-f]+),\ 16384\ lazy\ pages$ ]]
	vma=${BASH_REMATCH[1]} flags=${BASH_REMATCH[2]}
	lazy_refused "has lazy pages in VMA $vma of $ZDTM_IMG/mm-1.img (flags $flags, status 0x201: MAP_LOCKED), which a lazy restore never registers with userfaultfd: they could not be served"
	grep ' Error ' "$ZDTM_WORK/lazy.log" | grep -qE "\): $ZDTM_IMG/pagemap-1.img: offset [0-9]+: entry 0x[0-9a-f]+-0x[0-9a-f]+ has lazy pages"
}

@test "zdtm lazy ours: a pagemap entry whose field 2 and field 5 counts differ is refused before the restore" {
	local edit=$LU_BUILD/test/tools/img-edit out
	zdtm_start anon --size 64M
	zdtm_dump
	# The first lazy entry of 2 pages or more gets one less in its other count field.
	out=$("$edit" count-mismatch "$ZDTM_IMG" 1)
	echo "img-edit: $out"
	[[ $out =~ ^entry\ at\ offset\ ([0-9]+)\ vaddr\ (0x[0-9a-f]+)\ field\ 2\ ([0-9]+)\ field\ 5\ ([0-9]+)$ ]]
	lazy_refused "$ZDTM_IMG/pagemap-1.img: offset ${BASH_REMATCH[1]}: entry at ${BASH_REMATCH[2]} has two page counts that disagree: ${BASH_REMATCH[3]} in field 2 (read by CRIU 4.1), ${BASH_REMATCH[4]} in field 5 (CRIU 4.2)"
}

@test "zdtm lazy ours: a daemon given other images than criu restore's kills the restored tree and exits 1" {
	local mine=$ZDTM_DIR/img other=$ZDTM_DIR/other err i
	# Two dumps of anon, as two programs would be: other layouts (sizes, ASLR), both pid 1.
	ZDTM_IMG=$other
	mkdir -p "$other"
	zdtm_start anon --size 8M
	zdtm_dump
	rm -f "$ZDTM_PIDFILE" "$ZDTM_OUT"
	ZDTM_IMG=$mine
	zdtm_start anon --size 16M
	zdtm_dump
	# The daemon serves the other dump; criu restores this one.
	ZDTM_IMG=$other zdtm_lazy_start_daemon ours
	ZDTM_RWORK=$ZDTM_WORK
	run zdtm_restore -W "$ZDTM_WORK" --lazy-pages
	echo "$output"
	ZDTM_RPID=$(cat "$ZDTM_WORK/restored.pid" 2>/dev/null) || ZDTM_RPID=
	zdtm_lazy_wait
	echo "daemon exit $ZDTM_DRC"
	[ "$ZDTM_DRC" = 1 ]
	err=$(grep ' Error ' "$ZDTM_WORK/lazy.log" | head -n 1)
	echo "first error: $err"
	[[ $err =~ \):\ task\ 1\ \(pid\ [0-9]+\):\ 0x[0-9a-f]+,\ lazy\ memory\ in\ $other/pagemap-1.img\ \(range\ 0x[0-9a-f]+-0x[0-9a-f]+,\ dump-time\ 0x[0-9a-f]+\),\ is\ in\ no\ VMA\ the\ restorer\ registered:\ criu\ restore\ restored\ this\ task\ from\ other\ images\ than\ the\ daemon\'s$ ]]
	grep -q 'killing restored task 1 (pid [0-9]*)' "$ZDTM_WORK/lazy.log"
	# Nothing runs on: the restored root (if criu got to write its pid) is gone, and the
	# program never wrote a verdict.
	for ((i = 0; i < 100; i++)); do
		[ -n "$ZDTM_RPID" ] && zdtm_alive "$ZDTM_RPID" || break
		sleep 0.05
	done
	[ -z "$ZDTM_RPID" ] || ! zdtm_alive "$ZDTM_RPID"
	[ ! -e "$ZDTM_OUT" ]
}

# zdtm_run_detached DAEMON PROG [ARGS...]: a lazy restore with --daemon --pidfile.
zdtm_run_detached() {
	local daemon=$1
	shift
	zdtm_start "$@" || return 1
	zdtm_dump || return 1
	zdtm_lazy_start_detached "$daemon" || return 1
	ZDTM_RWORK=$ZDTM_WORK
	zdtm_restore -W "$ZDTM_WORK" --lazy-pages || return 1
	zdtm_stop || return 1
	zdtm_expect_pass || return 1
	zdtm_lazy_wait_detached
}

@test "zdtm lazy ours: --daemon --pidfile" {
	zdtm_run_detached ours anon --size 64M
	served=$(zdtm_lazy_stats_served "$ZDTM_STATS")
	[ "$served" -gt 0 ]
}

# lazy_thread PID NAME: PID has a thread called NAME (waits 5 s at most for it).
lazy_thread() {
	local i
	for ((i = 0; i < 100; i++)); do
		grep -qx "$2" /proc/"$1"/task/*/comm 2>/dev/null && return 0
		sleep 0.05
	done
	echo "pid $1 has no thread $2: $(cat /proc/"$1"/task/*/comm 2>/dev/null | tr '\n' ' ')"
	return 1
}

@test "zdtm lazy ours: --daemon forks before its threads start (copy thread, page-server receiver)" {
	local work=$ZDTM_DIR/detached pid ps port=$((20000 + RANDOM % 20000))

	zdtm_start anon --size 64K
	zdtm_dump
	mkdir -p "$work"
	"$LAZY_UFFD" daemon -D "$ZDTM_IMG" -W "$work" -o lazy.log --daemon --pidfile lazy.pid --copy-threads 1 </dev/null
	pid=$(cat "$work/lazy.pid")
	lazy_thread "$pid" lazy-uffd-copy || { kill -KILL "$pid"; false; }
	kill -KILL "$pid"

	"$LAZY_UFFD" page-server -D "$ZDTM_IMG" -W "$work" -o ps.log --address 127.0.0.1 --port "$port" \
		--daemon --pidfile ps.pid </dev/null
	ps=$(cat "$work/ps.pid")
	rm -f "$work/lazy.pid"
	"$LAZY_UFFD" daemon -D "$ZDTM_IMG" -W "$work" -o lazy.log --daemon --pidfile lazy.pid \
		--page-server --address 127.0.0.1 --port "$port" </dev/null || { kill -KILL "$ps"; false; }
	pid=$(cat "$work/lazy.pid")
	lazy_thread "$pid" lazy-uffd-recv || { kill -KILL "$pid" "$ps"; false; }
	kill -KILL "$pid" "$ps"
}

@test "zdtm lazy criu: --daemon --pidfile" {
	zdtm_run_detached criu anon --size 64M
}

# --- the harness can fail ------------------------------------------------------

@test "zdtm lazy selftest: a bad page after a lazy restore is a FAIL" {
	zdtm_lazy_cycle ours anon --size 64K --selftest-corrupt flip:5
	zdtm_expect_fail '^FAIL: anon: page 5 at 0x[0-9a-f]+: first bad offset 123 '
	zdtm_lazy_finish
}

@test "zdtm lazy selftest: a restore that served nothing lazily fails (our daemon)" {
	# Every present page moved to a parent image as PE_PARENT: criu restore fills all of
	# it itself, the daemon runs and exits 0, and the run is eager in all but name.
	zdtm_start anon --size 1M --expect-lazy --settle
	zdtm_dump
	zdtm_mkchain parent 1 --all
	zdtm_lazy_restore ours
	zdtm_stop
	zdtm_expect_pass
	run zdtm_lazy_finish
	echo "$output"
	[ "$status" -ne 0 ]
	[[ ${lines[0]} == "zdtm: no page was served lazily (pages_fault + pages_background = 0): an eager restore?" ]]
}

@test "zdtm lazy selftest: a probe with --expect-lazy of memory that is all present fails the run" {
	# An eager restore: every page is there before the program looks. The memory is
	# right (PASS), but the run did not test a lazy path.
	zdtm_cycle anon --size 1M --check-order seq --expect-lazy
	zdtm_expect_pass
	run zdtm_lazy_exercised
	echo "$output"
	[ "$status" -ne 0 ]
	[[ ${lines[0]} == "zdtm: not exercised: anon: anon: all 256 pages were present before the test touched them (--expect-lazy): the lazy path was not exercised" ]]
}

@test "zdtm lazy selftest: storm with --expect-lazy is inconclusive only when no process had lazy memory" {
	# Eagerly restored, every process finds its memory there: the children say so by
	# their exit status (not a failure), the root by the run's .inconclusive file.
	zdtm_cycle storm --procs 4 --threads 2 --shared 64K --size 64K --expect-lazy
	zdtm_expect_pass
	run zdtm_lazy_exercised
	echo "$output"
	[ "$status" -ne 0 ]
	[[ ${lines[0]} == "zdtm: not exercised: storm: all 4 processes had all of their memory before their threads touched it (--expect-lazy): the lazy path was not exercised" ]]
	grep -qx "storm: 0 of 4 processes still had lazy memory when SIGTERM came" "$ZDTM_OUT.notes"
	grep -qx "child3: storm thread memory: 0 of 16 pages not present yet" "$ZDTM_OUT.child3.notes"
}

@test "zdtm lazy selftest: a run that never exercises the lazy path fails after three attempts" {
	# Each cycle restores eagerly (no --lazy-pages) while a daemon waits in vain, so
	# every probe finds its memory present; the daemon is killed, not checked.
	zdtm_lazy_cycle() {
		zdtm_start "${@:2}" --expect-lazy --settle || return 1
		zdtm_dump || return 1
		zdtm_lazy_start_daemon "$1" || return 1
		ZDTM_RWORK=$ZDTM_WORK
		zdtm_restore -W "$ZDTM_WORK" || return 1	# no --lazy-pages: all present
		zdtm_stop
	}
	zdtm_lazy_check_daemon() { :; }
	zdtm_lazy_wait() { zdtm_kill "$ZDTM_DPID" "$(zdtm_daemon_comm)"; ZDTM_DPID=; }
	run zdtm_run_lazy ours anon --size 1M --check-order seq
	echo "$output"
	[ "$status" -ne 0 ]
	[ "$(grep -c 'did not exercise the lazy path' <<<"$output")" = 2 ]
	[[ $output == *"zdtm: not exercised: anon: anon: all 256 pages were present"* ]]
	[[ $output == *"(after 3 attempts)"* ]]
}

@test "zdtm lazy selftest: a daemon that exits before its ready byte fails the run" {
	mkdir -p "$ZDTM_DIR/empty"
	ZDTM_IMG=$ZDTM_DIR/empty
	run zdtm_lazy_restore ours
	echo "$output"
	[ "$status" -ne 0 ]
	[[ ${lines[0]} == "zdtm: ours lazy-pages daemon exited (1) before it was ready" ]]
}

@test "zdtm lazy selftest: an Error line in the daemon log fails the run" {
	zdtm_run_lazy criu anon --size 64K
	echo "(00.000001) Error (criu/uffd.c:1): made up for this test" >>"$ZDTM_WORK/lazy.log"
	run zdtm_lazy_check
	echo "$output"
	[ "$status" -ne 0 ]
	[[ ${lines[0]} == "zdtm: criu daemon log has errors: (00.000001) Error (criu/uffd.c:1): made up for this test" ]]
}

@test "zdtm lazy selftest: a daemon that does not exit fails the run, and is killed" {
	# A restore without --lazy-pages never connects: the daemon waits for ever.
	ZDTM_LAZY_TIMEOUT=1
	zdtm_start anon --size 64K
	zdtm_dump
	zdtm_lazy_start_daemon ours
	local dpid=$ZDTM_DPID
	ZDTM_RWORK=$ZDTM_WORK
	zdtm_restore -W "$ZDTM_WORK"
	zdtm_stop
	zdtm_expect_pass
	run zdtm_lazy_finish
	echo "$output"
	[ "$status" -ne 0 ]
	[[ ${lines[0]} == "zdtm: ours lazy-pages daemon (pid $dpid) still runs 1s later" ]]
	zdtm_teardown
	for ((i = 0; i < 100; i++)); do
		zdtm_alive "$dpid" || break
		sleep 0.05
	done
	! zdtm_alive "$dpid"
}
