#!/usr/bin/env bats
# Load: many processes and threads faulting at once, and a fork in every process right
# after the restore, each checked byte for byte (test/zdtm/storm.c), with our daemon.
# The daemon's peak RSS, CPU time and speed are printed with each test. The 8 GiB
# restore is `make stress` (test/stress/), outside make check.

load ../lib
load zdtm

setup() {
	zdtm_setup_lazy
}

teardown() {
	zdtm_teardown
}

# report: the daemon's figures from --stats, shown in the TAP output.
report() {
	local s=$ZDTM_STATS
	echo "# $(grep -c '"pid":' "$s") tasks, $(zdtm_lazy_stats_served "$s") pages served lazily," \
		"faults $(grep -oE '"faults": *[0-9]+' "$s" | awk -F: '{ s += $2 } END { print s + 0 }')," \
		"$(grep -oE '"gbytes_per_second": *[0-9.]+' "$s" | awk -F: '{ print $2 + 0 }') GB/s," \
		"daemon peak RSS $(grep -oE '"daemon_max_rss_kib": *[0-9]+' "$s" | awk -F: '{ print $2 + 0 }') KiB," \
		"CPU $(grep -oE '"daemon_cpu_seconds": *[0-9.]+' "$s" | awk -F: '{ print $2 + 0 }') s" >&3
	# The --expect-lazy count of the root (storm.c), when it made one.
	sed -n 's/^storm: \(.* still had lazy memory\).*/# \1/p' "$ZDTM_OUT.notes" 2>/dev/null >&3 || true
}

@test "load ours: 64 processes x 4 threads, all faulting at once" {
	zdtm_run_lazy ours storm --procs 64 --threads 4
	# Every process was handed over and served: 64 tasks in the stats, and faults came
	# from many of them (not just the background population).
	[ "$(grep -c '"pid":' "$ZDTM_STATS")" = 64 ] || { cat "$ZDTM_STATS"; return 1; }
	local faulted
	faulted=$(grep -cE '"faults": *[1-9]' "$ZDTM_STATS" || true)
	[ "$faulted" -ge 16 ] || { echo "only $faulted tasks faulted"; cat "$ZDTM_STATS"; return 1; }
	report
}

@test "load ours: fork storm, every one of 32 processes forks after restore and the forks read lazy pages" {
	# The root's ballast holds up the population of every child handed over after the
	# root (the daemon fills tasks in the order their uffds arrive, the restorers' order):
	# those still have lazy memory when they fork (without it the whole tree was
	# sometimes complete before SIGTERM came).
	zdtm_run_lazy ours storm --procs 32 --threads 2 --shared 16M --fork-storm --ballast 512M
	# A fork made while its process still had lazy pages gets its own uffd from a FORK
	# event (a task with forked_from set; a process whose memory was complete closed its
	# uffd, and its fork is the kernel's business). Many of them, and most of those had
	# pages served on their own faults.
	local forks faulted
	forks=$(grep -cE '"forked_from": *[1-9]' "$ZDTM_STATS" || true)
	faulted=$(grep -E '"forked_from": *[1-9]' "$ZDTM_STATS" | grep -cE '"pages_fault": *[1-9]' || true)
	echo "# $forks forks had lazy pages, $faulted of them faulted" >&3
	[ "$forks" -ge 8 ] && [ "$faulted" -ge 4 ] || { cat "$ZDTM_STATS"; return 1; }
	report
}
