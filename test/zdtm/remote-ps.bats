#!/usr/bin/env bats
# Remote lazy restores, pairing 2: our daemon (`lazy-uffd daemon --page-server`) with
# `criu page-server --lazy-pages` serving a normal dump from the source namespace.
#
# Every lazy zdtm test of lazy.bats and lazy-scenarios.bats, plain and over TLS (remote.bash
# for the namespaces and the checks). The PE_LAZY|PE_PARENT chains run in remote-ours.bats:
# CRIU's page server does not serve lazy pages kept in a parent image.

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

@test "remote ps: anon 4K" {
	zdtm_remote_run ps anon --size 4K
}

@test "remote ps: anon 2M+4K (not THP aligned)" {
	zdtm_remote_run ps anon --size 2M+4K
}

@test "remote ps: anon 64M" {
	zdtm_remote_run ps anon --size 64M
}

@test "remote ps: anon 1G" {
	zdtm_remote_run ps anon --size 1G
}

@test "remote ps: sparse" {
	zdtm_remote_run ps sparse
}

@test "remote ps: zeropages" {
	zdtm_remote_run ps zeropages
}

@test "remote ps: tree" {
	zdtm_remote_run ps tree
}

@test "remote ps: threads" {
	zdtm_remote_run ps threads
}

@test "remote ps: anon 64M, first touches in address order" {
	zdtm_remote_run ps anon --size 64M --check-order seq --ballast $BALLAST
}

@test "remote ps: anon 64M, first touches in random order" {
	zdtm_remote_run ps anon --size 64M --check-order random --ballast $BALLAST
}

@test "remote ps: anon 64M, first touches are writes in random order" {
	zdtm_remote_run ps anon --size 64M --check-order write --ballast $BALLAST
}

@test "remote ps: fork after restore" {
	zdtm_remote_run ps forkcheck --ballast $BALLAST
	[ "$(grep -c '"forked_from": *1' "$ZDTM_STATS")" = 2 ]
}

@test "remote ps: MADV_DONTNEED on lazy ranges" {
	zdtm_remote_run ps lazyops --op dontneed --ballast $BALLAST
}

@test "remote ps: munmap of lazy ranges, and MAP_FIXED over one" {
	zdtm_remote_run ps lazyops --op munmap --ballast $BALLAST
}

@test "remote ps: mremap of lazy ranges" {
	zdtm_remote_run ps lazyops --op mremap --ballast $BALLAST
}

@test "remote ps: mremap of parts of lazy VMAs" {
	zdtm_remote_run ps lazyops --op mremap-part --ballast $BALLAST
}

@test "remote ps: mremap MREMAP_DONTUNMAP of a lazy VMA" {
	zdtm_remote_run ps lazyops --op mremap-dontunmap --ballast $BALLAST
}

@test "remote ps: stack growth below the dumped stack VMA" {
	zdtm_remote_run ps lazyops --op stackgrow --ballast $BALLAST
}

@test "remote ps: mremap, MADV_DONTNEED and munmap while four threads fault" {
	zdtm_remote_run ps lazyops --op churn --ballast $BALLAST
}

@test "remote ps: adjacent lazy VMAs that differ only in protection" {
	zdtm_remote_run ps lazyops --op prot-layout --ballast $BALLAST
}

@test "remote ps: mprotect PROT_NONE, then PROT_READ, of whole lazy VMAs" {
	zdtm_remote_run ps lazyops --op mprotect --ballast $BALLAST
}

@test "remote ps: mprotect of part of a lazy VMA (splits it)" {
	zdtm_remote_run ps lazyops --op mprotect-split --ballast $BALLAST
}

@test "remote ps: MADV_NOHUGEPAGE on part of a lazy VMA (splits it)" {
	zdtm_remote_run ps lazyops --op madvise-split --ballast $BALLAST
}

@test "remote ps: anon 64M THP-eligible" {
	thp_required || return
	zdtm_remote_run ps anon --size 64M --thp --check-order seq --ballast $BALLAST
}

@test "remote ps: eight threads fault shared and own pages at once" {
	zdtm_remote_run ps threads --shared 16M --ballast $BALLAST
}

@test "remote ps: a tree with two zombies" {
	zdtm_remote_run ps zombie
	[ "$(zdtm_remote_stats_pids)" = "1 3 " ]
}

@test "remote ps: 1G, exits at once after SIGTERM" {
	zdtm_remote_run ps anon --size 1G --exit-at-once
	grep -q '"exited_early": *true' "$ZDTM_STATS"
}

@test "remote ps: 1G, execs itself after SIGTERM" {
	zdtm_remote_run ps anon --size 1G --exec-after
	grep -q '"exited_early": *true' "$ZDTM_STATS"
}

@test "remote ps: a root with 40 children" {
	zdtm_remote_run ps fanout --children 40
	[ "$(grep -c '"pid":' "$ZDTM_STATS")" = 41 ]
}

@test "remote ps: 256M, 1% pattern, the rest zero or never written" {
	zdtm_remote_run ps mostlyzero --ballast $BALLAST
}

@test "remote ps: parent images b -> a, PE_PARENT" {
	zdtm_remote_chain_run ps parent 1 anon --size 64M
}

@test "remote ps: parent images c -> b -> a, PE_PARENT, four tasks" {
	zdtm_remote_chain_run ps parent 2 tree
}

# --- over TLS ---

@test "remote ps tls: anon 4K" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run ps anon --size 4K
}

@test "remote ps tls: anon 2M+4K (not THP aligned)" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run ps anon --size 2M+4K
}

@test "remote ps tls: anon 64M" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run ps anon --size 64M
}

@test "remote ps tls: anon 1G" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run ps anon --size 1G
}

@test "remote ps tls: sparse" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run ps sparse
}

@test "remote ps tls: zeropages" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run ps zeropages
}

@test "remote ps tls: tree" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run ps tree
}

@test "remote ps tls: threads" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run ps threads
}

@test "remote ps tls: anon 64M, first touches in address order" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run ps anon --size 64M --check-order seq --ballast $BALLAST
}

@test "remote ps tls: anon 64M, first touches in random order" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run ps anon --size 64M --check-order random --ballast $BALLAST
}

@test "remote ps tls: anon 64M, first touches are writes in random order" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run ps anon --size 64M --check-order write --ballast $BALLAST
}

@test "remote ps tls: fork after restore" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run ps forkcheck --ballast $BALLAST
	[ "$(grep -c '"forked_from": *1' "$ZDTM_STATS")" = 2 ]
}

@test "remote ps tls: MADV_DONTNEED on lazy ranges" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run ps lazyops --op dontneed --ballast $BALLAST
}

@test "remote ps tls: munmap of lazy ranges, and MAP_FIXED over one" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run ps lazyops --op munmap --ballast $BALLAST
}

@test "remote ps tls: mremap of lazy ranges" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run ps lazyops --op mremap --ballast $BALLAST
}

@test "remote ps tls: mremap of parts of lazy VMAs" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run ps lazyops --op mremap-part --ballast $BALLAST
}

@test "remote ps tls: mremap MREMAP_DONTUNMAP of a lazy VMA" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run ps lazyops --op mremap-dontunmap --ballast $BALLAST
}

@test "remote ps tls: stack growth below the dumped stack VMA" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run ps lazyops --op stackgrow --ballast $BALLAST
}

@test "remote ps tls: mremap, MADV_DONTNEED and munmap while four threads fault" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run ps lazyops --op churn --ballast $BALLAST
}

@test "remote ps tls: adjacent lazy VMAs that differ only in protection" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run ps lazyops --op prot-layout --ballast $BALLAST
}

@test "remote ps tls: mprotect PROT_NONE, then PROT_READ, of whole lazy VMAs" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run ps lazyops --op mprotect --ballast $BALLAST
}

@test "remote ps tls: mprotect of part of a lazy VMA (splits it)" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run ps lazyops --op mprotect-split --ballast $BALLAST
}

@test "remote ps tls: MADV_NOHUGEPAGE on part of a lazy VMA (splits it)" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run ps lazyops --op madvise-split --ballast $BALLAST
}

@test "remote ps tls: anon 64M THP-eligible" {
	thp_required || return
	ZDTM_REMOTE_TLS=1 zdtm_remote_run ps anon --size 64M --thp --check-order seq --ballast $BALLAST
}

@test "remote ps tls: eight threads fault shared and own pages at once" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run ps threads --shared 16M --ballast $BALLAST
}

@test "remote ps tls: a tree with two zombies" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run ps zombie
	[ "$(zdtm_remote_stats_pids)" = "1 3 " ]
}

@test "remote ps tls: 1G, exits at once after SIGTERM" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run ps anon --size 1G --exit-at-once
	grep -q '"exited_early": *true' "$ZDTM_STATS"
}

@test "remote ps tls: 1G, execs itself after SIGTERM" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run ps anon --size 1G --exec-after
	grep -q '"exited_early": *true' "$ZDTM_STATS"
}

@test "remote ps tls: a root with 40 children" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run ps fanout --children 40
	[ "$(grep -c '"pid":' "$ZDTM_STATS")" = 41 ]
}

@test "remote ps tls: 256M, 1% pattern, the rest zero or never written" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run ps mostlyzero --ballast $BALLAST
}

@test "remote ps tls: parent images b -> a, PE_PARENT" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_chain_run ps parent 1 anon --size 64M
}

@test "remote ps tls: parent images c -> b -> a, PE_PARENT, four tasks" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_chain_run ps parent 2 tree
}
