#!/usr/bin/env bats
# Remote lazy restores, pairing 1: our daemon (`lazy-uffd daemon --page-server`) with
# `criu dump --lazy-pages --port` as the source: the lazy pages never reach a file, they
# stay in the frozen dumped tree until the daemon asks for them.
#
# Every lazy zdtm test of lazy.bats and lazy-scenarios.bats, plain and over TLS, with the
# source (program, criu dump) and the destination (daemon, criu restore) in two network
# namespaces joined by a veth pair (remote.bash). Parent-image tests have no run here: a
# lazy dump writes no page data that a parent chain could be made of (and criu pre-dump
# cannot run on this kernel); remote-ps.bats and remote-criu.bats run them.

load ../lib
load zdtm
load remote

BALLAST=256M

setup() {
	lu_require_root || return
	lu_require_criu || return
	[ -x "$LAZY_UFFD" ] || { lu_skip "$LAZY_UFFD is not built"; return; }
	zdtm_setup
	zdtm_remote_setup
}

teardown() {
	zdtm_teardown
}

thp_required() {
	grep -qE '\[(always|madvise)\]' /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null ||
		lu_skip "transparent huge pages are disabled"
}

# --- plain TCP ---

@test "remote dump: anon 4K" {
	zdtm_remote_run dump anon --size 4K
}

@test "remote dump: anon 2M+4K (not THP aligned)" {
	zdtm_remote_run dump anon --size 2M+4K
}

@test "remote dump: anon 64M" {
	zdtm_remote_run dump anon --size 64M
}

@test "remote dump: anon 1G" {
	zdtm_remote_run dump anon --size 1G
}

@test "remote dump: sparse" {
	zdtm_remote_run dump sparse
}

@test "remote dump: zeropages" {
	zdtm_remote_run dump zeropages
}

@test "remote dump: tree" {
	zdtm_remote_run dump tree
}

@test "remote dump: threads" {
	zdtm_remote_run dump threads
}

@test "remote dump: anon 64M, first touches in address order" {
	zdtm_remote_run dump anon --size 64M --check-order seq --ballast $BALLAST
}

@test "remote dump: anon 64M, first touches in random order" {
	zdtm_remote_run dump anon --size 64M --check-order random --ballast $BALLAST
}

@test "remote dump: anon 64M, first touches are writes in random order" {
	zdtm_remote_run dump anon --size 64M --check-order write --ballast $BALLAST
}

# late_small SHOW LOG: the first background request (a GET whose answer was not a
# fault's) into a lazy VMA bigger than one request (256 pages), as "the bulk began: LINE",
# then those into smaller ones that came after it, one log line each. SHOW is `lazy-uffd show`'s output for the dump,
# LOG the daemon's at -v4. Hex addresses compare as strings once padded to 16 digits.
late_small() {
	awk '
	function pad(a) { sub(/^0x/, "", a); while (length(a) < 16) a = "0" a; return a }
	FNR == 1 { f++ }
	f == 1 && $1 == "vma" && $4 == "lazy" && $10 > 0 {
		split($2, b, "-"); n++; lo[n] = pad(b[1]); hi[n] = pad(b[2]); small[n] = $6 <= 256
	}
	f == 2 && / got [0-9]+ of [0-9]+ pages at .*\(fault\)$/ {
		for (i = 1; i <= NF; i++) if ($i == "at") fault[pad($(i + 1))] = 1
	}
	f == 3 && / GET [0-9]+ pages at / {
		for (i = 1; i <= NF; i++) if ($i == "at") a = pad($(i + 1))
		if (a in fault) next
		for (v = 1; v <= n; v++) if (a >= lo[v] && a < hi[v]) break
		if (v > n) next
		if (!small[v] && !big) { big = 1; print "the bulk began: " $0 }
		else if (small[v] && big) print $0
	}' "$1" "$2" "$2"
}

@test "remote dump: the small lazy VMAs (stack, data) are asked for before the bulk" {
	local late
	zdtm_remote_run dump anon --size 32M
	"$LAZY_UFFD" show "$ZDTM_IMG" >"$ZDTM_DIR/show.txt"
	# Both sorts must be there, or the check below holds for nothing.
	awk '$1 == "vma" && $4 == "lazy" && $10 > 0 { s += $6 <= 256; b += $6 > 256 } END { exit !(s && b) }' \
		"$ZDTM_DIR/show.txt" || { cat "$ZDTM_DIR/show.txt"; false; }
	grep -q ' GET [0-9]* pages at ' "$ZDTM_WORK/lazy.log"
	late=$(late_small "$ZDTM_DIR/show.txt" "$ZDTM_WORK/lazy.log")
	[ "$(grep -vc '^the bulk began: ' <<<"$late")" = 0 ] ||
		{ echo "background requests into small VMAs after the bulk began:"; echo "$late"; false; }
}

@test "remote dump: fork after restore" {
	zdtm_remote_run dump forkcheck --ballast $BALLAST
	[ "$(grep -c '"forked_from": *1' "$ZDTM_STATS")" = 2 ]
}

@test "remote dump: MADV_DONTNEED on lazy ranges" {
	zdtm_remote_run dump lazyops --op dontneed --ballast $BALLAST
}

@test "remote dump: munmap of lazy ranges, and MAP_FIXED over one" {
	zdtm_remote_run dump lazyops --op munmap --ballast $BALLAST
}

@test "remote dump: mremap of lazy ranges" {
	zdtm_remote_run dump lazyops --op mremap --ballast $BALLAST
}

@test "remote dump: mremap of parts of lazy VMAs" {
	zdtm_remote_run dump lazyops --op mremap-part --ballast $BALLAST
}

@test "remote dump: mremap MREMAP_DONTUNMAP of a lazy VMA" {
	zdtm_remote_run dump lazyops --op mremap-dontunmap --ballast $BALLAST
}

@test "remote dump: stack growth below the dumped stack VMA" {
	zdtm_remote_run dump lazyops --op stackgrow --ballast $BALLAST
}

@test "remote dump: mremap, MADV_DONTNEED and munmap while four threads fault" {
	zdtm_remote_run dump lazyops --op churn --ballast $BALLAST
}

@test "remote dump: adjacent lazy VMAs that differ only in protection" {
	zdtm_remote_run dump lazyops --op prot-layout --ballast $BALLAST
}

@test "remote dump: mprotect PROT_NONE, then PROT_READ, of whole lazy VMAs" {
	zdtm_remote_run dump lazyops --op mprotect --ballast $BALLAST
}

@test "remote dump: mprotect of part of a lazy VMA (splits it)" {
	zdtm_remote_run dump lazyops --op mprotect-split --ballast $BALLAST
}

@test "remote dump: MADV_NOHUGEPAGE on part of a lazy VMA (splits it)" {
	zdtm_remote_run dump lazyops --op madvise-split --ballast $BALLAST
}

@test "remote dump: anon 64M THP-eligible" {
	thp_required || return
	zdtm_remote_run dump anon --size 64M --thp --check-order seq --ballast $BALLAST
}

@test "remote dump: eight threads fault shared and own pages at once" {
	zdtm_remote_run dump threads --shared 16M --ballast $BALLAST
}

@test "remote dump: a tree with two zombies" {
	zdtm_remote_run dump zombie
	[ "$(zdtm_remote_stats_pids)" = "1 3 " ]
}

@test "remote dump: 1G, exits at once after SIGTERM" {
	zdtm_remote_run dump anon --size 1G --exit-at-once
	grep -q '"exited_early": *true' "$ZDTM_STATS"
}

@test "remote dump: 1G, execs itself after SIGTERM" {
	zdtm_remote_run dump anon --size 1G --exec-after
	grep -q '"exited_early": *true' "$ZDTM_STATS"
}

@test "remote dump: a root with 40 children" {
	zdtm_remote_run dump fanout --children 40
	[ "$(grep -c '"pid":' "$ZDTM_STATS")" = 41 ]
}

@test "remote dump: 256M, 1% pattern, the rest zero or never written" {
	zdtm_remote_run dump mostlyzero --ballast $BALLAST
}

# --- over TLS ---

@test "remote dump tls: anon 4K" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run dump anon --size 4K
}

@test "remote dump tls: anon 2M+4K (not THP aligned)" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run dump anon --size 2M+4K
}

@test "remote dump tls: anon 64M" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run dump anon --size 64M
}

@test "remote dump tls: anon 1G" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run dump anon --size 1G
}

@test "remote dump tls: sparse" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run dump sparse
}

@test "remote dump tls: zeropages" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run dump zeropages
}

@test "remote dump tls: tree" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run dump tree
}

@test "remote dump tls: threads" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run dump threads
}

@test "remote dump tls: anon 64M, first touches in address order" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run dump anon --size 64M --check-order seq --ballast $BALLAST
}

@test "remote dump tls: anon 64M, first touches in random order" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run dump anon --size 64M --check-order random --ballast $BALLAST
}

@test "remote dump tls: anon 64M, first touches are writes in random order" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run dump anon --size 64M --check-order write --ballast $BALLAST
}

@test "remote dump tls: fork after restore" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run dump forkcheck --ballast $BALLAST
	[ "$(grep -c '"forked_from": *1' "$ZDTM_STATS")" = 2 ]
}

@test "remote dump tls: MADV_DONTNEED on lazy ranges" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run dump lazyops --op dontneed --ballast $BALLAST
}

@test "remote dump tls: munmap of lazy ranges, and MAP_FIXED over one" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run dump lazyops --op munmap --ballast $BALLAST
}

@test "remote dump tls: mremap of lazy ranges" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run dump lazyops --op mremap --ballast $BALLAST
}

@test "remote dump tls: mremap of parts of lazy VMAs" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run dump lazyops --op mremap-part --ballast $BALLAST
}

@test "remote dump tls: mremap MREMAP_DONTUNMAP of a lazy VMA" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run dump lazyops --op mremap-dontunmap --ballast $BALLAST
}

@test "remote dump tls: stack growth below the dumped stack VMA" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run dump lazyops --op stackgrow --ballast $BALLAST
}

@test "remote dump tls: mremap, MADV_DONTNEED and munmap while four threads fault" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run dump lazyops --op churn --ballast $BALLAST
}

@test "remote dump tls: adjacent lazy VMAs that differ only in protection" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run dump lazyops --op prot-layout --ballast $BALLAST
}

@test "remote dump tls: mprotect PROT_NONE, then PROT_READ, of whole lazy VMAs" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run dump lazyops --op mprotect --ballast $BALLAST
}

@test "remote dump tls: mprotect of part of a lazy VMA (splits it)" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run dump lazyops --op mprotect-split --ballast $BALLAST
}

@test "remote dump tls: MADV_NOHUGEPAGE on part of a lazy VMA (splits it)" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run dump lazyops --op madvise-split --ballast $BALLAST
}

@test "remote dump tls: anon 64M THP-eligible" {
	thp_required || return
	ZDTM_REMOTE_TLS=1 zdtm_remote_run dump anon --size 64M --thp --check-order seq --ballast $BALLAST
}

@test "remote dump tls: eight threads fault shared and own pages at once" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run dump threads --shared 16M --ballast $BALLAST
}

@test "remote dump tls: a tree with two zombies" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run dump zombie
	[ "$(zdtm_remote_stats_pids)" = "1 3 " ]
}

@test "remote dump tls: 1G, exits at once after SIGTERM" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run dump anon --size 1G --exit-at-once
	grep -q '"exited_early": *true' "$ZDTM_STATS"
}

@test "remote dump tls: 1G, execs itself after SIGTERM" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run dump anon --size 1G --exec-after
	grep -q '"exited_early": *true' "$ZDTM_STATS"
}

@test "remote dump tls: a root with 40 children" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run dump fanout --children 40
	[ "$(grep -c '"pid":' "$ZDTM_STATS")" = 41 ]
}

@test "remote dump tls: 256M, 1% pattern, the rest zero or never written" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run dump mostlyzero --ballast $BALLAST
}

# --- the destination dies: the source must not take it for a finished transfer ---

# killed_mid_transfer: our daemon SIGKILLed while `criu dump --lazy-pages` still holds
# most of the memory. criu's dump side takes an EOF for a finished transfer and kills the
# dumped tree (both copies lost); the daemon's connections reset when they end any other
# way than cleanly, which it takes for a failed one: it resumes the tree.
killed_mid_transfer() {
	local i rc=0 log=$ZDTM_SRCIMG/dump.log
	zdtm_start anon --size 1G || return 1
	zdtm_remote_start_source dump || { zdtm_remote_diag; return 1; }
	zdtm_remote_copy || return 1
	zdtm_remote_restore ours || { zdtm_remote_diag; return 1; }
	kill -STOP "$ZDTM_DPID" || { echo "the daemon was gone when the restore returned"; return 1; }
	if grep -E "all tasks complete" "$ZDTM_WORK/lazy.log"; then
		echo "the transfer was over before the daemon could be stopped: nothing tested"
		return 1
	fi
	kill -KILL "$ZDTM_DPID"
	zdtm_lazy_wait >/dev/null
	for ((i = 0; i < ZDTM_REMOTE_TIMEOUT * 20; i++)); do
		zdtm_alive "$ZDTM_SRCPID" || break
		sleep 0.05
	done
	zdtm_alive "$ZDTM_SRCPID" && { echo "criu dump still runs ${ZDTM_REMOTE_TIMEOUT}s after the daemon died"; return 1; }
	wait "$ZDTM_SRCPID" || rc=$?
	ZDTM_SRCPID=
	[ "$rc" != 0 ] || { echo "criu dump exited 0: it took the daemon's death for a finished transfer"; tail -n 5 "$log"; return 1; }
	grep -q "Lazy pages transfer FAILED" "$log" || { echo "no 'Lazy pages transfer FAILED' in $log:"; tail -n 10 "$log"; return 1; }
	# The restored tree is gone (the guard), the source tree runs on with all of its memory.
	zdtm_alive "$ZDTM_RPID" && { echo "restored root $ZDTM_RPID still runs"; return 1; }
	zdtm_alive "$ZDTM_PID" || { echo "the dumped tree $ZDTM_PID is gone: both copies lost"; return 1; }
	rm -f "$ZDTM_OUT"
	kill -TERM "$ZDTM_PID"
	for ((i = 0; i < ZDTM_STOP_TIMEOUT * 20; i++)); do
		zdtm_alive "$ZDTM_PID" || break
		sleep 0.05
	done
	zdtm_expect_pass
}

@test "remote dump: our daemon SIGKILLed mid-transfer: criu dump fails and the dumped tree runs on intact" {
	killed_mid_transfer
}

@test "remote dump tls: our daemon SIGKILLed mid-transfer: criu dump fails and the dumped tree runs on intact" {
	ZDTM_REMOTE_TLS=1
	killed_mid_transfer
}
