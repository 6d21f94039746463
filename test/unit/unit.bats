#!/usr/bin/env bats
# The C unit tests of libcrimg (test/unit/test-*.c): exit 0 pass, 1 fail, 77 skip.

load ../lib

# run_unit NAME: run $LU_BUILD/test/unit/NAME in a scratch TMPDIR; its stderr says what failed.
run_unit() {
	local prog=$LU_BUILD/test/unit/$1

	[ -x "$prog" ] || { echo "$prog is missing: run make" >&2; return 1; }
	run env TMPDIR="$BATS_TEST_TMPDIR" "${LU_EXEC[@]}" "$prog"
	echo "$output"
	case $status in
	0) return 0 ;;
	77) lu_skip "$1 skipped: ${output##*$'\n'}" ;;
	*) echo "$1 exited $status" >&2; return 1 ;;
	esac
}

@test "unit: good images, 4.1 and 4.2 encodings, version 1 headers" {
	run_unit test-good
}

@test "unit: parent chain and PE_PARENT resolution" {
	run_unit test-chain
}

@test "unit: zombie task" {
	run_unit test-zombie
}

@test "unit: each corruption fails with file, offset and code" {
	run_unit test-corrupt
}

@test "unit: directory edges and the parent depth limit" {
	run_unit test-misc
}

@test "unit: truncated and mutated images never crash the reader" {
	run_unit test-fuzz
}

@test "unit: opening a 4 GiB dump reads only its pagemaps" {
	run_unit test-big
}

@test "unit: daemon lazy ranges follow faults, unmaps, remaps and forks (model check), at 64 KiB pages too" {
	run_unit test-ranges
}

@test "unit: the planner: fault-around window, prefetch front, background spans around the copy thread's" {
	run_unit test-plan
}

@test "unit: at the finish word, lazy ranges outside registered VMAs are a mismatch (real uffd)" {
	lu_native_only "qemu-user has no userfaultfd(2)"
	run_unit test-registered
}

@test "unit: option tables: each kind, included tables, --help's layout, --config FILE" {
	run_unit test-opts
}

@test "unit: 64 KiB pages: images written with them read back at 64 KiB, refused at 4 KiB and the reverse" {
	run_unit test-pagesize
}

@test "unit: access profiles are read back as written, at 64 KiB pages too; damage and another page size are refused with file and offset" {
	run_unit test-profile
}

@test "unit: a send to a peer that reads nothing gives up at SO_SNDTIMEO, over TLS too" {
	run_unit test-tls-send
}
