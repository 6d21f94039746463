#!/usr/bin/env bats
# Remote lazy restores, pairing 3: CRIU's own daemon (`criu lazy-pages --page-server`)
# with our page server (`lazy-uffd page-server --once`) in the source namespace.
#
# Every lazy zdtm test of lazy.bats and lazy-scenarios.bats that CRIU's daemon copes with
# (as in lazy-scenarios.bats: it loops for ever on a VMA split after the restore, and
# hangs on PE_LAZY|PE_PARENT pages), plain and over TLS. CRIU's client speaks the layout of
# its series, which our server tells from its first request. Not here either: the churn
# scenario (mremap, MADV_DONTNEED, munmap while threads fault): in remote mode CRIU's
# daemon sometimes never asks again for a page whose request was in flight across a
# REMAP/UNMAP, and the faulting thread waits for ever (seen once in three runs with 4.1.1:
# its log ends at a #PF with no Read after it); our daemon runs it in the other pairings.

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

@test "remote criu: anon 4K" {
	zdtm_remote_run criu anon --size 4K
}

@test "remote criu: anon 2M+4K (not THP aligned)" {
	zdtm_remote_run criu anon --size 2M+4K
}

@test "remote criu: anon 64M" {
	local kib
	zdtm_remote_run criu anon --size 64M
	# Room for thousands of queued requests: criu's client gives up on EAGAIN from send().
	kib=$(grep -oE 'receive buffer [0-9]+ KiB' "$ZDTM_DIR/ps.log" | head -n 1 | grep -oE '[0-9]+')
	echo "our page server's session receive buffer: $kib KiB"
	[ "$kib" -ge 4096 ]
}

@test "remote criu: anon 1G" {
	zdtm_remote_run criu anon --size 1G
}

@test "remote criu: sparse" {
	zdtm_remote_run criu sparse
}

@test "remote criu: zeropages" {
	zdtm_remote_run criu zeropages
}

@test "remote criu: tree" {
	zdtm_remote_run criu tree
}

@test "remote criu: threads" {
	zdtm_remote_run criu threads
}

@test "remote criu: anon 64M, first touches in address order" {
	zdtm_remote_run criu anon --size 64M --check-order seq --ballast $BALLAST
}

@test "remote criu: anon 64M, first touches in random order" {
	zdtm_remote_run criu anon --size 64M --check-order random --ballast $BALLAST
}

@test "remote criu: anon 64M, first touches are writes in random order" {
	zdtm_remote_run criu anon --size 64M --check-order write --ballast $BALLAST
}

@test "remote criu: fork after restore" {
	zdtm_remote_run criu forkcheck --ballast $BALLAST
}

@test "remote criu: MADV_DONTNEED on lazy ranges" {
	zdtm_remote_run criu lazyops --op dontneed --ballast $BALLAST
}

@test "remote criu: munmap of lazy ranges, and MAP_FIXED over one" {
	zdtm_remote_run criu lazyops --op munmap --ballast $BALLAST
}

@test "remote criu: mremap of lazy ranges" {
	zdtm_remote_run criu lazyops --op mremap --ballast $BALLAST
}

@test "remote criu: mremap of parts of lazy VMAs" {
	zdtm_remote_run criu lazyops --op mremap-part --ballast $BALLAST
}

@test "remote criu: mremap MREMAP_DONTUNMAP of a lazy VMA" {
	zdtm_remote_run criu lazyops --op mremap-dontunmap --ballast $BALLAST
}

@test "remote criu: stack growth below the dumped stack VMA" {
	zdtm_remote_run criu lazyops --op stackgrow --ballast $BALLAST
}

@test "remote criu: adjacent lazy VMAs that differ only in protection" {
	zdtm_remote_run criu lazyops --op prot-layout --ballast $BALLAST
}

@test "remote criu: mprotect PROT_NONE, then PROT_READ, of whole lazy VMAs" {
	zdtm_remote_run criu lazyops --op mprotect --ballast $BALLAST
}

@test "remote criu: anon 64M THP-eligible" {
	thp_required || return
	zdtm_remote_run criu anon --size 64M --thp --check-order seq --ballast $BALLAST
}

@test "remote criu: eight threads fault shared and own pages at once" {
	zdtm_remote_run criu threads --shared 16M --ballast $BALLAST
}

@test "remote criu: a tree with two zombies" {
	zdtm_remote_run criu zombie
}

@test "remote criu: 1G, exits at once after SIGTERM" {
	zdtm_remote_run criu anon --size 1G --exit-at-once
}

@test "remote criu: 1G, execs itself after SIGTERM" {
	zdtm_remote_run criu anon --size 1G --exec-after
}

@test "remote criu: a root with 40 children" {
	zdtm_remote_run criu fanout --children 40
}

@test "remote criu: 256M, 1% pattern, the rest zero or never written" {
	zdtm_remote_run criu mostlyzero --ballast $BALLAST
}

@test "remote criu: parent images b -> a, PE_PARENT" {
	zdtm_remote_chain_run criu parent 1 anon --size 64M
}

@test "remote criu: parent images c -> b -> a, PE_PARENT, four tasks" {
	zdtm_remote_chain_run criu parent 2 tree
}

# --- over TLS ---

@test "remote criu tls: anon 4K" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run criu anon --size 4K
}

@test "remote criu tls: anon 2M+4K (not THP aligned)" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run criu anon --size 2M+4K
}

@test "remote criu tls: anon 64M" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run criu anon --size 64M
}

@test "remote criu tls: anon 1G" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run criu anon --size 1G
}

@test "remote criu tls: sparse" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run criu sparse
}

@test "remote criu tls: zeropages" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run criu zeropages
}

@test "remote criu tls: tree" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run criu tree
}

@test "remote criu tls: threads" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run criu threads
}

@test "remote criu tls: anon 64M, first touches in address order" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run criu anon --size 64M --check-order seq --ballast $BALLAST
}

@test "remote criu tls: anon 64M, first touches in random order" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run criu anon --size 64M --check-order random --ballast $BALLAST
}

@test "remote criu tls: anon 64M, first touches are writes in random order" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run criu anon --size 64M --check-order write --ballast $BALLAST
}

@test "remote criu tls: fork after restore" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run criu forkcheck --ballast $BALLAST
}

@test "remote criu tls: MADV_DONTNEED on lazy ranges" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run criu lazyops --op dontneed --ballast $BALLAST
}

@test "remote criu tls: munmap of lazy ranges, and MAP_FIXED over one" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run criu lazyops --op munmap --ballast $BALLAST
}

@test "remote criu tls: mremap of lazy ranges" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run criu lazyops --op mremap --ballast $BALLAST
}

@test "remote criu tls: mremap of parts of lazy VMAs" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run criu lazyops --op mremap-part --ballast $BALLAST
}

@test "remote criu tls: mremap MREMAP_DONTUNMAP of a lazy VMA" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run criu lazyops --op mremap-dontunmap --ballast $BALLAST
}

@test "remote criu tls: stack growth below the dumped stack VMA" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run criu lazyops --op stackgrow --ballast $BALLAST
}

@test "remote criu tls: adjacent lazy VMAs that differ only in protection" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run criu lazyops --op prot-layout --ballast $BALLAST
}

@test "remote criu tls: mprotect PROT_NONE, then PROT_READ, of whole lazy VMAs" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run criu lazyops --op mprotect --ballast $BALLAST
}

@test "remote criu tls: anon 64M THP-eligible" {
	thp_required || return
	ZDTM_REMOTE_TLS=1 zdtm_remote_run criu anon --size 64M --thp --check-order seq --ballast $BALLAST
}

@test "remote criu tls: eight threads fault shared and own pages at once" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run criu threads --shared 16M --ballast $BALLAST
}

@test "remote criu tls: a tree with two zombies" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run criu zombie
}

@test "remote criu tls: 1G, exits at once after SIGTERM" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run criu anon --size 1G --exit-at-once
}

@test "remote criu tls: 1G, execs itself after SIGTERM" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run criu anon --size 1G --exec-after
}

@test "remote criu tls: a root with 40 children" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run criu fanout --children 40
}

@test "remote criu tls: 256M, 1% pattern, the rest zero or never written" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_run criu mostlyzero --ballast $BALLAST
}

@test "remote criu tls: parent images b -> a, PE_PARENT" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_chain_run criu parent 1 anon --size 64M
}

@test "remote criu tls: parent images c -> b -> a, PE_PARENT, four tasks" {
	ZDTM_REMOTE_TLS=1 zdtm_remote_chain_run criu parent 2 tree
}
