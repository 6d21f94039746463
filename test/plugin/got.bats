#!/usr/bin/env bats
# plugin/got.c finds and rewrites a program's GOT slot for an imported function however
# the program was linked (lazy PLT, BIND_NOW + RELRO, -fno-plt), and leaves the page's
# protection as it found it. The programs are built from test/plugin/got-test.c.

load ../lib

got() {
	local prog=$LU_BUILD/test/plugin/got-$1
	[ -x "$prog" ] || { echo "$prog is not built (make $prog)"; return 1; }
	shift
	run "$prog" "$@"
	echo "$output"
}

@test "got: lazy binding, partial RELRO: a writable JUMP_SLOT (how criu 4.x is linked)" {
	got lazy jump writable
	[ "$status" -eq 0 ]
	[ "$output" = "PASS jump writable" ]
}

@test "got: -z now -z relro: the JUMP_SLOT is read-only; written through mprotect, read-only after" {
	got now jump readonly
	[ "$status" -eq 0 ]
	[ "$output" = "PASS jump readonly" ]
}

@test "got: -fno-plt: calls go through a read-only GLOB_DAT slot" {
	got noplt glob readonly
	[ "$status" -eq 0 ]
	[ "$output" = "PASS glob readonly" ]
}

@test "got: the checker fails when the slot is not what it expects" {
	got noplt jump writable
	[ "$status" -eq 1 ]
	[[ "$output" == *"slot kind GLOB_DAT, want jump"* ]]
}

@test "got: the criu in use imports syscall() and ioctl() through GOT slots" {
	lu_require_criu || return
	run readelf -rW "$CRIU"
	[ "$status" -eq 0 ]
	echo "$output" | grep -E 'R_X86_64_(JUMP_SLOT|GLOB_DAT) .* syscall@'
	echo "$output" | grep -E 'R_X86_64_(JUMP_SLOT|GLOB_DAT) .* ioctl@'
}

@test "got: got-scan finds the criu in use's syscall() and ioctl() slots in its file, as readelf does" {
	lu_require_criu || return
	load got_scan
	got_scan_check "$CRIU"
	# A symbol criu does not import: no slot, exit 1.
	run "$LU_BUILD/test/tools/got-scan" "$CRIU" syscall no_such_import_anywhere
	[ "$status" -eq 1 ]
	[[ "$output" == *"no GOT slot for no_such_import_anywhere"* ]]
}
