#!/usr/bin/env bats
# The daemon's performance machinery, checked for correctness (figures are reported by
# `make demo`, never asserted): access profiles recorded on one restore and prefetched on
# a second restore of the same images, busy-polling on and off, and the --stats figures
# by cause and by path adding up.

load ../lib
load zdtm

setup() {
	zdtm_setup_lazy
}

teardown() {
	zdtm_teardown
}

# perf_num KEY [FILE]: the first number after "KEY": in the --stats JSON.
perf_num() {
	grep -oE "\"$1\": *[0-9.]+" "${2:-$ZDTM_STATS}" | head -n 1 | grep -oE '[0-9.]+$'
}

# perf_sum KEY: KEY summed over every occurrence (all tasks).
perf_sum() {
	grep -oE "\"$1\": *[0-9]+" "$ZDTM_STATS" | awk -F: '{ s += $2 } END { print s + 0 }'
}

# perf_check_stats: per task, the bytes by path add up to the bytes copied, the pages by
# path to those bytes, and the faults by cause to the faults; the daemon's spans nest
# (from the finish word <= from the first uffd <= from its start).
perf_check_stats() {
	awk -v wall="$(perf_num wall_seconds)" -v uffd="$(perf_num populate_from_uffd_seconds)" \
		-v pop="$(perf_num populate_seconds)" 'BEGIN {
		if (!(uffd > 0 && pop <= uffd && uffd <= wall)) {
			printf "spans do not nest: populate %s, from uffd %s, wall %s\n", pop, uffd, wall
			exit 1
		}
	}'
	awk '
	/"pid": / {
		n = 0
		split("", v)
		line = $0
		while (match(line, /"[a-z_]+": [0-9]+/)) {
			kv = substr(line, RSTART, RLENGTH)
			line = substr(line, RSTART + RLENGTH)
			split(kv, p, /": /)
			k = substr(p[1], 2)
			# bytes_by_path and faults_by_cause keys are unique in a task object,
			# except "fault", "zero" and "background", which come once per object.
			v[k "#" (++seen[k])] = p[2]
		}
		delete seen
		bytes = v["bytes#1"]
		paths = v["fault#1"] + v["fault_around#1"] + v["background#1"] + v["prefetch#1"]
		pages = v["pages_fault#1"] + v["pages_background#1"] + v["pages_prefetch#1"]
		causes = v["copied#1"] + v["already_present#1"] + v["zero#1"] + v["queued#1"]
		if (paths != bytes) { printf "task %s: bytes by path %d != bytes %d\n", v["pid#1"], paths, bytes; bad = 1 }
		if (pages * 4096 != bytes) { printf "task %s: pages by path %d x 4096 != bytes %d\n", v["pid#1"], pages, bytes; bad = 1 }
		if (causes != v["faults#1"]) { printf "task %s: faults by cause %d != faults %d\n", v["pid#1"], causes, v["faults#1"]; bad = 1 }
		if (v["zero#2"] != v["pages_zero#1"] * 4096) { printf "task %s: zero bytes %d != %d zero pages\n", v["pid#1"], v["zero#2"], v["pages_zero#1"]; bad = 1 }
		tasks++
	}
	END { if (!tasks) { print "no task in the stats"; bad = 1 } exit bad }
	' "$ZDTM_STATS"
}

# perf_restore_again: restore the images of the last (finished) cycle once more, with
# ZDTM_DAEMON_ARGS as they are now; the program must PASS again.
perf_restore_again() {
	rm -f "$ZDTM_OUT" "$ZDTM_OUT".* "$ZDTM_WORK/restored.pid" "$ZDTM_WORK/lazy.log" "$ZDTM_STATS"
	zdtm_lazy_restore ours || return 1
	zdtm_stop || return 1
	zdtm_expect_pass || return 1
	zdtm_lazy_wait || return 1
	zdtm_lazy_check_daemon
}

@test "perf ours: a profile recorded on one restore is prefetched on the next, byte-exact" {
	local prof=$ZDTM_DIR/access.prof size nr hits misses pf prefetched skipped thread

	# 64M: long enough a prefetch that it goes on past the restore's end, where the
	# restorer's own remaps no longer turn copies away (EAGAIN) and both threads copy.
	ZDTM_DAEMON_ARGS=(--record-profile "$prof")
	zdtm_run_lazy ours anon --size 64M --check-order random
	[ -s "$prof" ] || { echo "no profile written at $prof"; false; }
	size=$(stat -c %s "$prof")
	nr=$(perf_num recorded_records)
	echo "profile: $size bytes, $nr records"
	[ "$nr" -gt 0 ]
	[ "$size" = $((40 + 16 * nr)) ]
	[ "$(head -c 8 "$prof" | od -An -c | tr -d ' ')" = 'LUPROF\0001' ]
	# Version 2, and the page size its counts are in.
	[ "$(od -An -tu4 -j 8 -N 4 "$prof" | tr -d ' ')" = 2 ]
	[ "$(od -An -tu4 -j 32 -N 4 "$prof" | tr -d ' ')" = "$(getconf PAGESIZE)" ]
	perf_check_stats

	# Two records no restore can use: a task the dump does not have, a page outside
	# lazy memory. Both are skipped and counted, and nothing else changes.
	printf '\x92\x10\x00\x00\x01\x00\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00' >>"$prof" # vpid 4242
	printf '\x01\x00\x00\x00\x01\x00\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00' >>"$prof" # 0x1000 of task 1
	nr=$((nr + 2))
	printf "$(printf '\\x%02x' $((nr & 255)) $((nr >> 8 & 255)) $((nr >> 16 & 255)))" |
		dd of="$prof" bs=1 seek=24 conv=notrunc status=none

	# Both CPUs on the profile: the copy thread takes batches from its front. Under
	# SCHED_BATCH the daemon leaves the thread that policy (not SCHED_IDLE), so a busy
	# machine cannot starve it to nothing and fail this for the wrong reason.
	ZDTM_DAEMON_ARGS=(--prefetch-profile "$prof" --copy-threads 1)
	ZDTM_DAEMON_WRAP=(chrt --batch 0)
	perf_restore_again
	ZDTM_DAEMON_WRAP=()
	cat "$ZDTM_STATS"
	thread=$(perf_num copy_thread_prefetch_bytes)
	echo "copy thread: $thread bytes of $(perf_sum prefetch) prefetch bytes"
	[ "$thread" -gt 0 ]
	[ "$thread" -le "$(perf_sum prefetch)" ]
	[ "$thread" -le "$(perf_num copy_thread_bytes)" ]
	prefetched=$(perf_sum pages_prefetch)
	hits=$(perf_sum hits)
	misses=$(perf_sum misses)
	pf=$(perf_sum profile_pages)
	skipped=$(perf_sum skipped_pages)
	echo "profile pages $pf: prefetched $prefetched, hits $hits, misses $misses, skipped $skipped"
	[ "$prefetched" -gt 0 ]
	[ "$hits" = "$prefetched" ]
	[ $((hits + misses)) -le "$pf" ]
	[ "$skipped" = 1 ]
	[ "$(perf_num profile_records)" = "$((nr - 1))" ]
	[ "$(perf_num profile_skipped_records)" = 1 ]
	grep -q "pages of task 1 are not lazy memory of this dump; skipped" "$ZDTM_WORK/lazy.log"
	perf_check_stats

	# The loop alone.
	ZDTM_DAEMON_ARGS=(--prefetch-profile "$prof" --copy-threads 0)
	perf_restore_again
	perf_check_stats
	[ "$(perf_num copy_thread_prefetch_bytes)" = 0 ]
	[ "$(perf_sum pages_prefetch)" -gt 0 ]
	[ "$(perf_sum hits)" = "$(perf_sum pages_prefetch)" ]
}

# perf_refused FILE REGEX: the daemon refuses --prefetch-profile FILE on ZDTM_IMG before
# it listens: exit 1, REGEX in its error line, no socket.
perf_refused() {
	local work=$ZDTM_DIR/refused
	rm -rf "$work"
	mkdir -p "$work"
	run "$LAZY_UFFD" daemon -D "$ZDTM_IMG" -W "$work" --prefetch-profile "$1"
	echo "$output"
	[ "$status" = 1 ]
	[[ $output =~ Error.*--prefetch-profile:\ profile\ $1$2 ]]
	[ ! -e "$work/lazy-pages.socket" ]
}

@test "perf ours: a damaged, truncated or foreign profile is refused, naming file and offset" {
	local p=$ZDTM_DIR/p fp hdr

	zdtm_start anon --size 64K
	zdtm_dump
	# Not a profile at all.
	echo "hello, this is not a profile at all" >"$p"
	perf_refused "$p" ', offset 0: not a lazy-uffd profile \(bad magic\)'
	# Too short for the header.
	printf 'LUPROF\0\1\1\0\0\0' >"$p"
	perf_refused "$p" ', offset 12: truncated header \(12 of 32 bytes\)'
	# Recorded on other images (fingerprint 0): the message gives this dump's.
	hdr='LUPROF\0\1\1\0\0\0\20\0\0\0'
	printf "$hdr"'\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0' >"$p"
	perf_refused "$p" ', offset 16: recorded on other images \(fingerprint 0000000000000000, these are [0-9a-f]{16}\)'
	fp=$(grep -oE 'these are [0-9a-f]{16}' <<<"$output" | grep -oE '[0-9a-f]{16}$')
	# This dump's fingerprint, 2 records announced, 1 there.
	{
		printf "$hdr"
		printf "$(sed -E 's/(..)/\1 /g' <<<"$fp" | awk '{ for (i = NF; i >= 1; i--) printf "\\x%s", $i }')"
		printf '\2\0\0\0\0\0\0\0'
		printf '\1\0\0\0\1\0\0\0\0\0\0\0\0\0\0\0'
	} >"$p"
	perf_refused "$p" ', offset 48: 2 records need 64 bytes, the file has 48'
	# Complete, but its second record has 0 pages.
	printf '\1\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0' >>"$p"
	perf_refused "$p" ', offset 52: record 1: 0 pages \(1 to 262144\)'
	# Version 2, recorded with 64 KiB pages (on this 4 KiB system): refused at offset 32.
	if [ "$(getconf PAGESIZE)" = 4096 ]; then
		{
			printf 'LUPROF\0\1\2\0\0\0\20\0\0\0'
			printf "$(sed -E 's/(..)/\1 /g' <<<"$fp" | awk '{ for (i = NF; i >= 1; i--) printf "\\x%s", $i }')"
			printf '\0\0\0\0\0\0\0\0\0\0\1\0\0\0\0\0'
		} >"$p"
		perf_refused "$p" ', offset 32: recorded with 65536-byte pages, this system.s page size is 4096: record the profile again here'
	fi
	# A missing file.
	perf_refused "$ZDTM_DIR/none" ': No such file or directory'
}

@test "perf ours: busy-poll off and on, byte-exact; only polling counts polled wakeups" {
	# Big enough that the background copy is still running when the first touches come.
	ZDTM_DAEMON_ARGS=(--busy-poll 0)
	zdtm_run_lazy ours anon --size 256M --check-order random
	perf_check_stats
	echo "busy-poll 0: polled $(perf_num polled_wakeups), sleeps $(perf_num epoll_sleeps), faults $(perf_sum faults)"
	[ "$(perf_num busy_poll_us)" = 0 ]
	[ "$(perf_num polled_wakeups)" = 0 ]
	[ "$(perf_sum faults)" -gt 0 ]

	ZDTM_DAEMON_ARGS=(--busy-poll 200000)
	perf_restore_again
	perf_check_stats
	echo "busy-poll 200000: polled $(perf_num polled_wakeups), sleeps $(perf_num epoll_sleeps), faults $(perf_sum faults)"
	[ "$(perf_num busy_poll_us)" = 200000 ]
	[ "$(perf_num polled_wakeups)" -gt 0 ]
}

@test "perf ours: the copy thread on and off, byte-exact; its bytes are counted as background" {
	local bytes bg

	# Faults (random order) and layout events of the program meet the thread's runs.
	ZDTM_DAEMON_ARGS=(--copy-threads 1)
	zdtm_run_lazy ours anon --size 256M --check-order random
	perf_check_stats
	bytes=$(perf_num copy_thread_bytes)
	bg=$(perf_sum background)
	echo "copy thread: $bytes bytes of $bg background bytes"
	[ "$(perf_num copy_threads)" = 1 ]
	[ "$bytes" -gt 0 ]
	[ "$bytes" -le "$bg" ]

	ZDTM_DAEMON_ARGS=(--copy-threads 0 --loop-cpu 0)
	perf_restore_again
	perf_check_stats
	[ "$(perf_num copy_threads)" = 0 ]
	[ "$(perf_num copy_thread_bytes)" = 0 ]
	grep -q "the loop runs on CPU 0 only$" "$ZDTM_WORK/lazy.log"
}

@test "perf ours: a fault where the dump has no data zeroes the hole around it too, byte-exact" {
	local zf pz

	# 16-page blocks never written before the dump (holes in lazy memory), read in order
	# while the ballast keeps the daemon serving.
	zdtm_run_lazy ours mostlyzero --size 16M --ballast 256M
	perf_check_stats
	zf=$(grep '"pid": ' "$ZDTM_STATS" | awk 'match($0, /"zero": [0-9]+/) { s += substr($0, RSTART + 8, RLENGTH - 8) } END { print s + 0 }')
	pz=$(perf_sum pages_zero)
	echo "zero faults $zf, zero pages mapped $pz"
	[ "$zf" -gt 0 ]
	# One fault per page would be the old way; a window of 8 and more per fault is the new.
	[ "$pz" -ge $((4 * zf)) ]
}

@test "perf ours: --busy-poll, --copy-threads, --loop-cpu, --record-profile and --prefetch-profile usage errors" {
	run "$LAZY_UFFD" daemon -D /nonexistent --busy-poll -1
	[ "$status" = 2 ]
	[[ $output =~ "bad --busy-poll '-1' (microseconds, 0 to 1000000)" ]]
	run "$LAZY_UFFD" daemon -D /nonexistent --busy-poll 5x
	[ "$status" = 2 ]
	run "$LAZY_UFFD" daemon -D /nonexistent --copy-threads 2
	[ "$status" = 2 ]
	[[ $output =~ "bad --copy-threads '2' (0 or 1)" ]]
	run "$LAZY_UFFD" daemon -D /nonexistent --loop-cpu x
	[ "$status" = 2 ]
	[[ $output =~ "bad --loop-cpu 'x' (a CPU number)" ]]
	run taskset -c 0 "$LAZY_UFFD" daemon -D /nonexistent --loop-cpu 1
	[ "$status" = 2 ]
	[[ $output =~ "--loop-cpu 1: not among the 1 CPUs the daemon may run on" ]]
	run "$LAZY_UFFD" daemon -D /nonexistent --page-server --port 1 --record-profile /tmp/x
	[ "$status" = 2 ]
	[[ $output =~ "--record-profile and --prefetch-profile work with local pages, not --page-server" ]]
	run "$LAZY_UFFD" daemon --help
	[ "$status" = 0 ]
	[[ $output =~ "--busy-poll USEC" ]]
	[[ $output =~ "--copy-threads N" ]]
	[[ $output =~ "--loop-cpu CPU" ]]
	[[ $output =~ "--record-profile FILE" ]]
	[[ $output =~ "--prefetch-profile FILE" ]]
}
