#!/usr/bin/env bats
# make check-cross: the plugin's GOT finder built for aarch64, run under qemu-user, on
# Debian's arm64 criu executables and on the got-test programs (test/plugin/got-test.c)
# linked each way a criu can be. LAZY_UFFD_CROSS_ENV names the sysroot and the criu files
# (mk/deps.sh cross); LAZY_UFFD_EXEC the emulator.

load ../lib
load ../plugin/got_scan

setup() {
	[ ${#LU_EXEC[@]} -gt 0 ] || { echo "run by make check-cross (LAZY_UFFD_EXEC names the emulator)"; return 1; }
	# shellcheck source=/dev/null
	. "${LAZY_UFFD_CROSS_ENV:?run by make check-cross}"
}

@test "cross: got-scan finds syscall() and ioctl() in Debian's arm64 criu 4.1" {
	got_scan_check "$CROSS_CRIU_41"
	[[ "$output" == *JUMP_SLOT* ]]
}

@test "cross: got-scan finds syscall() and ioctl() in Debian's arm64 criu 4.2" {
	got_scan_check "$CROSS_CRIU_42"
	[[ "$output" == *JUMP_SLOT* ]]
}

@test "cross: got-scan built for aarch64 refuses an x86_64 executable, naming both" {
	lu_require_criu || return
	run "${LU_EXEC[@]}" "$LU_BUILD/test/tools/got-scan" "$CRIU" syscall
	echo "$output"
	[ "$status" -eq 2 ]
	[[ "$output" == *"ELF machine 62"*"reads aarch64 executables only"* ]]
}

# got_test LINK KIND PROT: test/plugin/got-test, linked as LINK, under the emulator.
got_test() {
	run "${LU_EXEC[@]}" "$LU_BUILD/test/plugin/got-$1" "$2" "$3"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "PASS $2 $3" ]
}

@test "cross: aarch64, lazy binding: a writable R_AARCH64_JUMP_SLOT found and rewritten" {
	got_test lazy jump writable
}

@test "cross: aarch64, -z now -z relro: a read-only R_AARCH64_JUMP_SLOT" {
	got_test now jump readonly
}

@test "cross: aarch64, -fno-plt: a read-only R_AARCH64_GLOB_DAT" {
	got_test noplt glob readonly
}
