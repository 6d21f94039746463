#!/usr/bin/env bats
# zdtm-style tests: each program sets up its state, is dumped and restored by the criu
# in use (CRIU_SERIES), then checks itself and writes PASS or FAIL (lib/zdtmtst.h).
# Eager restores here; lazy.bats and lazy-scenarios.bats restore lazily.

load ../lib
load zdtm

setup() {
	lu_require_root || return
	lu_require_criu || return
	zdtm_setup
}

teardown() {
	zdtm_teardown
}

@test "zdtm anon: 4K" {
	zdtm_run anon --size 4K
}

@test "zdtm anon: 2M+4K (not THP aligned)" {
	zdtm_run anon --size 2M+4K
}

@test "zdtm anon: 64M" {
	zdtm_run anon --size 64M
}

@test "zdtm anon: 1G" {
	zdtm_run anon --size 1G
}

@test "zdtm sparse: holes, gaps, untouched and dropped pages" {
	zdtm_run sparse
}

@test "zdtm zeropages: zero-filled, read-only, untouched and huge zero pages" {
	zdtm_run zeropages
}

@test "zdtm tree: root, child, grandchild and a second child" {
	zdtm_run tree
}

@test "zdtm threads: eight threads with their own memory" {
	zdtm_run threads
}

# The checker and the harness catch bad bytes: spoil one page after the restore.
@test "zdtm selftest: a flipped byte is a FAIL naming the page and offset" {
	zdtm_cycle anon --size 64K --selftest-corrupt flip:5
	run zdtm_expect_pass
	[ "$status" -ne 0 ]
	zdtm_expect_fail '^FAIL: anon: page 5 at 0x[0-9a-f]+: first bad offset 123 .*; 1 of 16 pages bad$'
}

@test "zdtm selftest: a zeroed page is a FAIL saying so" {
	zdtm_cycle anon --size 64K --selftest-corrupt zero:3
	zdtm_expect_fail '^FAIL: anon: page 3 at .*: first bad offset 0 .*the page is all zero'
}

@test "zdtm selftest: a misplaced page is a FAIL naming where it came from" {
	zdtm_cycle anon --size 64K --selftest-corrupt move:2
	zdtm_expect_fail "^FAIL: anon: page 2 at .*it holds page 3's data"
}

@test "zdtm selftest: a grandchild's bad page reaches the root's outfile" {
	zdtm_cycle tree --size 64K --selftest-corrupt flip:7 --selftest-in grandchild
	zdtm_expect_fail '^FAIL: root: child1 exited 2 \(a descendant failed\)'
	grep -q '^FAIL: tree grandchild own: page 7 at ' "$ZDTM_OUT.grandchild"
	grep -qx PASS "$ZDTM_OUT.child2"
}

@test "zdtm selftest: a bad page in a sparse run fails the test" {
	zdtm_cycle sparse --selftest-corrupt flip:0
	zdtm_expect_fail '^FAIL: sparse pattern @0\+16: page 0 at .*first bad offset 123'
}

@test "zdtm selftest: a bad page in a thread's memory fails the test" {
	zdtm_cycle threads --size 64K --selftest-corrupt flip:9
	zdtm_expect_fail '^FAIL: threads 0 memory: page 9 at .*first bad offset 123'
}

# `lazy-uffd show` on a real dump: the whole 1G VMA is there and present.
@test "zdtm show: lazy-uffd show lists the 1G anon VMA, all present" {
	[ -x "$LAZY_UFFD" ] || lu_skip "$LAZY_UFFD is not built"
	"$LAZY_UFFD" --help 2>/dev/null | grep -qE '^ +show ' ||
		lu_skip "$LAZY_UFFD has no 'show' command yet"
	zdtm_start anon --size 1G --mapfile "$ZDTM_DIR/map"
	zdtm_dump
	read -r start bytes <"$ZDTM_DIR/map"
	run "$LAZY_UFFD" show "$ZDTM_IMG"
	echo "$output" | head -n 40
	[ "$status" -eq 0 ]
	[[ ${lines[0]} =~ ^images\ .*img\ parents\ 0$ ]]
	local line found= re
	re='^ +vma 0x([0-9a-f]+)-0x([0-9a-f]+) [rwxps-]{4} (lazy|eager) pages ([0-9]+) present ([0-9]+) '
	for line in "${lines[@]}"; do
		[[ $line =~ $re ]] || continue
		(( 16#${BASH_REMATCH[1]} == start )) || continue
		(( 16#${BASH_REMATCH[2]} == start + bytes ))
		[ "${BASH_REMATCH[3]}" = lazy ]
		[ "${BASH_REMATCH[4]}" = 262144 ]
		[ "${BASH_REMATCH[5]}" = 262144 ]
		found=$line
	done
	[ -n "$found" ] || { echo "no vma line starting at $start"; false; }
}
