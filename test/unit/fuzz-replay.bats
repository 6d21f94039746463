#!/usr/bin/env bats
# The fuzz targets' seeds (real dumps, fuzz/corpus) and every input that once crashed a
# target (fuzz/regress), replayed through the same target code built without libFuzzer
# (under ASan+UBSan in `make asan`): a crash fixed once stays fixed.

load ../lib

replay() {
	local t=$1 bin=$LU_BUILD/fuzz/replay-$1 n
	[ -x "$bin" ] || { lu_skip "$bin is not built (make test programs)"; return; }
	n=$(find "$LU_TOP/fuzz/corpus/$t" "$LU_TOP/fuzz/regress/$t" -type f 2>/dev/null | wc -l)
	[ "$n" -ge 5 ] || { echo "only $n seeds for $t"; return 1; }
	run "$bin" $(find "$LU_TOP/fuzz/corpus/$t" "$LU_TOP/fuzz/regress/$t" -type f 2>/dev/null | sort)
	[ "$status" = 0 ] || { echo "$output"; return 1; }
	[ "${lines[-1]}" = "$n inputs replayed" ] || { echo "$output"; return 1; }
}

@test "fuzz replay: inventory.img seeds and regressions" {
	replay image-inventory
}

@test "fuzz replay: pstree.img seeds and regressions" {
	replay image-pstree
}

@test "fuzz replay: core-1.img seeds and regressions" {
	replay image-core
}

@test "fuzz replay: mm-1.img seeds and regressions" {
	replay image-mm
}

@test "fuzz replay: pagemap-1.img seeds and regressions" {
	replay image-pagemap
}

@test "fuzz replay: page-server request streams, seeds and regressions" {
	replay ps-server
}

@test "fuzz replay: access profiles, seeds and regressions" {
	replay profile
}
