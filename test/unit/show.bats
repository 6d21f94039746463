#!/usr/bin/env bats
# `lazy-uffd show` on the synthetic image directories of test/unit/imgwriter.c (built
# by $LU_BUILD/test/unit/mkimg): exact output for good images, exit 1 and the exact
# error line, naming file and offset, for each corrupted one.

bats_require_minimum_version 1.5.0
load ../lib

setup_file() {
	local mkimg=$LU_BUILD/test/unit/mkimg

	[ -x "$mkimg" ] || { echo "$mkimg is missing: run make" >&2; return 1; }
	"$mkimg" --all "$BATS_FILE_TMPDIR/img"
}

setup() {
	IMG=$BATS_FILE_TMPDIR/img
}

# show DIR: run lazy-uffd show with stdout in $output and stderr in $stderr.
show() {
	run --separate-stderr "$LAZY_UFFD" show "$@"
	printf 'exit %s\nstdout:\n%s\nstderr:\n%s\n' "$status" "$output" "$stderr"
}

# expect_output TEXT: exit 0, nothing on stderr, stdout exactly TEXT.
expect_output() {
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	diff -u <(printf '%s\n' "$1") <(printf '%s\n' "$output")
}

# expect_error SCENARIO MESSAGE: exit 1, no stdout, stderr exactly "lazy-uffd: error: MESSAGE".
expect_error() {
	show "$IMG/$1"
	[ "$status" -eq 1 ]
	[ -z "$output" ]
	diff -u <(printf 'lazy-uffd: error: %s\n' "$2") <(printf '%s\n' "$stderr")
}

good41_body() {
	cat <<-END
	task 1 ppid 0 threads 2 pagemap $1 pages pages-3.img
	  vma 0x400000-0x402000 r-xp eager pages 2 present 2 lazy 0 parent 0 zero 0
	  vma 0x600000-0x604000 rw-p lazy pages 4 present 3 lazy 3 parent 0 zero 1
	  vma 0x604000-0x606000 rw-p lazy pages 2 present 1 lazy 1 parent 0 zero 1
	  vma 0x7ffd0000-0x7ffd4000 rw-p lazy pages 4 present 2 lazy 1 parent 0 zero 1
	  vma 0x7ffd8000-0x7ffd9000 r--p eager pages 1 present 1 lazy 0 parent 0 zero 0
	  vma 0x7ffd9000-0x7ffdb000 r-xp eager pages 2 present 2 lazy 0 parent 0 zero 0
	  vma 0x7f0000000000-0x7f0000002000 rw-s eager pages 2 present 0 lazy 0 parent 0 zero 2
	  vma 0x7f0000010000-0x7f0000011000 rw-p eager pages 1 present 0 lazy 0 parent 0 zero 1
	  total pages 18 present 11 lazy 5 parent 0 zero 6
	task 5 ppid 1 threads 1 pagemap $1 pages pages-4.img
	  vma 0x10000-0x12000 rw-p lazy pages 2 present 1 lazy 1 parent 0 zero 1
	  total pages 2 present 1 lazy 1 parent 0 zero 1
	END
}

@test "show --help: usage on stdout, exit 0" {
	show --help
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	[ "${lines[0]}" = "usage: lazy-uffd show [--help] DIR" ]
}

@test "show: usage errors exit 2" {
	show
	[ "$status" -eq 2 ]
	[ -z "$output" ]
	[[ "$stderr" == "lazy-uffd: error: show: no image directory given"$'\n'"usage: lazy-uffd show"* ]]

	show "$IMG/good41" "$IMG/good42"
	[ "$status" -eq 2 ]
	[ -z "$output" ]
	[[ "$stderr" == "lazy-uffd: error: show: more than one directory given"* ]]

	show --bogus "$IMG/good41"
	[ "$status" -eq 2 ]
	[[ "$stderr" == "lazy-uffd: error: show: unknown option '--bogus'"* ]]
}

@test "show: good 4.1 dump" {
	show "$IMG/good41"
	expect_output "images $IMG/good41 parents 0
$(good41_body 4.1)"
}

@test "show: good 4.2 dump (GUARD vma dropped)" {
	show "$IMG/good42"
	expect_output "images $IMG/good42 parents 0
$(good41_body 4.2)"
}

@test "show: image version 1 headers" {
	show "$IMG/v1"
	expect_output "images $IMG/v1 parents 0
$(good41_body 4.1)"
}

@test "show: zombie" {
	show "$IMG/zombie"
	expect_output "images $IMG/zombie parents 0
task 1 ppid 0 threads 1 pagemap 4.1 pages pages-1.img
  vma 0x10000-0x11000 rw-p lazy pages 1 present 1 lazy 1 parent 0 zero 0
  total pages 1 present 1 lazy 1 parent 0 zero 0
task 2 ppid 1 zombie"
}

@test "show: parent chain of two pre-dumps" {
	show "$IMG/chain"
	expect_output "images $IMG/chain parents 2
task 1 ppid 0 threads 1 pagemap 4.1 pages pages-7.img
  vma 0x10000000-0x10010000 rw-p lazy pages 16 present 2 lazy 6 parent 9 zero 1
  total pages 16 present 2 lazy 6 parent 9 zero 1
task 2 ppid 1 threads 1 pagemap 4.1 pages pages-8.img
  vma 0x5000000-0x5001000 rw-p lazy pages 1 present 1 lazy 1 parent 0 zero 0
  total pages 1 present 1 lazy 1 parent 0 zero 0"
}

@test "show: dangling parent link is no parent" {
	show "$IMG/dangling-parent"
	expect_output "images $IMG/dangling-parent parents 0
task 1 ppid 0 threads 1 pagemap 4.1 pages pages-2.img
  vma 0x10000-0x14000 rw-p lazy pages 4 present 3 lazy 3 parent 0 zero 1
  vma 0x14000-0x16000 rw-p lazy pages 2 present 1 lazy 1 parent 0 zero 1
  vma 0x20000-0x21000 r-xp eager pages 1 present 1 lazy 0 parent 0 zero 0
  total pages 7 present 5 lazy 4 parent 0 zero 2"
}

@test "show: only remote pages and no pages file" {
	show "$IMG/lazy-only"
	expect_output "images $IMG/lazy-only parents 0
task 1 ppid 0 threads 1 pagemap 4.1 pages pages-2.img
  vma 0x10000-0x14000 rw-p lazy pages 4 present 0 lazy 4 parent 0 zero 0
  vma 0x14000-0x16000 rw-p lazy pages 2 present 0 lazy 0 parent 0 zero 2
  vma 0x20000-0x21000 r-xp eager pages 1 present 0 lazy 0 parent 0 zero 1
  total pages 7 present 0 lazy 4 parent 0 zero 3"
}

@test "show: a directory that does not exist" {
	expect_error no-such-dir "$IMG/no-such-dir: cannot open image directory: No such file or directory"
}

@test "show error: wrong common magic" {
	expect_error bad-magic "$IMG/bad-magic/pstree.img: offset 0: bad magic 0xdeadbeef (expected 0x54564319)"
}

@test "show error: wrong type magic" {
	expect_error bad-type-magic "$IMG/bad-type-magic/mm-1.img: offset 4: bad magic 0x56084025 (expected 0x57492820)"
}

@test "show error: wrong inventory magic" {
	expect_error bad-inventory-magic \
		"$IMG/bad-inventory-magic/inventory.img: offset 0: bad magic 0x54564319 (expected 0x58313116)"
}

@test "show error: inventory img_version 3" {
	expect_error bad-inventory-version "$IMG/bad-inventory-version/inventory.img: offset 4: unsupported img_version 3"
}

@test "show error: record length header cut short" {
	expect_error trunc-header "$IMG/trunc-header/pagemap-1.img: offset 38: truncated record header: 2 of 4 bytes"
}

@test "show error: record payload cut short" {
	expect_error trunc-payload \
		"$IMG/trunc-payload/pagemap-1.img: offset 38: record length 8 runs past end of file (size 45)"
}

@test "show error: record length past end of file" {
	expect_error len-past-eof \
		"$IMG/len-past-eof/pagemap-1.img: offset 38: record length 9000 runs past end of file (size 50)"
}

@test "show error: record length over the limit" {
	expect_error len-huge \
		"$IMG/len-huge/pagemap-1.img: offset 38: record length 4294967295 exceeds the limit of 16777216 bytes"
}

@test "show error: garbage protobuf in a pagemap" {
	expect_error garbage "$IMG/garbage/pagemap-1.img: offset 38: cannot decode pagemap_entry (8 bytes)"
}

@test "show error: garbage protobuf in mm" {
	expect_error garbage-mm "$IMG/garbage-mm/mm-1.img: offset 8: cannot decode mm_entry (3 bytes)"
}

@test "show error: overlapping entries" {
	expect_error overlap \
		"$IMG/overlap/pagemap-1.img: offset 26: entry 0x11000-0x13000 overlaps the previous entry 0x10000-0x12000"
}

@test "show error: unsorted entries" {
	expect_error unsorted "$IMG/unsorted/pagemap-1.img: offset 26: entry 0x10000-0x12000 is unsorted: it starts before the previous entry 0x13000-0x15000"
}

@test "show error: entry runs past its VMA" {
	expect_error past-vma "$IMG/past-vma/pagemap-1.img: offset 26: entry 0x15000-0x17000: page 0x16000 is outside every VMA"
}

@test "show error: entry outside every VMA" {
	expect_error outside-vma \
		"$IMG/outside-vma/pagemap-1.img: offset 26: entry 0x18000-0x19000: page 0x18000 is outside every VMA"
}

@test "show error: unknown entry flags" {
	expect_error bad-flags "$IMG/bad-flags/pagemap-1.img: offset 26: entry at 0x13000 has unknown flags 0x14"
}

@test "show error: PE_PARENT with PE_PRESENT" {
	expect_error parent-present \
		"$IMG/parent-present/pagemap-1.img: offset 26: entry at 0x13000 has flags 0x5: both PE_PARENT and PE_PRESENT"
}

@test "show error: unaligned vaddr" {
	expect_error unaligned "$IMG/unaligned/pagemap-1.img: offset 26: vaddr 0x13800 is not page aligned"
}

@test "show error: entry past 2^64" {
	expect_error overflow "$IMG/overflow/pagemap-1.img: offset 26: entry at 0xfffffffffffff000 with 2 pages runs past the end of the address space"
}

@test "show error: field 2 and field 5 page counts differ" {
	expect_error count-mismatch "$IMG/count-mismatch/pagemap-1.img: offset 26: entry at 0x13000 has two page counts that disagree: 2 in field 2 (read by CRIU 4.1), 1 in field 5 (CRIU 4.2)"
}

@test "show error: lazy pages in a MAP_LOCKED VMA" {
	expect_error lazy-locked "$IMG/lazy-locked/pagemap-1.img: offset 14: entry 0x10000-0x12000 has lazy pages in VMA 0x10000-0x14000 of $IMG/lazy-locked/mm-1.img (flags 0x2022, status 0x201: MAP_LOCKED), which a lazy restore never registers with userfaultfd: they could not be served"
}

@test "show error: a lazy entry straddling into a MAP_SHARED VMA" {
	expect_error lazy-shared "$IMG/lazy-shared/pagemap-1.img: offset 26: entry 0x13000-0x15000 has lazy pages in VMA 0x14000-0x16000 of $IMG/lazy-shared/mm-1.img (flags 0x21, status 0x101: MAP_SHARED), which a lazy restore never registers with userfaultfd: they could not be served"
}

@test "show error: pagemap without head" {
	expect_error no-head "$IMG/no-head/pagemap-1.img: offset 8: no pagemap_head record"
}

@test "show error: duplicate pid" {
	expect_error dup-pid "$IMG/dup-pid/pstree.img: offset 22: duplicate pid 1"
}

@test "show error: missing pages file" {
	expect_error missing-pages "$IMG/missing-pages/pages-2.img: cannot open: No such file or directory ($IMG/missing-pages/pagemap-1.img has 5 present pages)"
}

@test "show error: short pages file" {
	expect_error short-pages "$IMG/short-pages/pages-2.img: offset 16384: file ends, but $IMG/short-pages/pagemap-1.img has 5 present pages (20480 bytes)"
}

@test "show error: missing mm" {
	expect_error missing-mm "$IMG/missing-mm/mm-1.img: cannot open: No such file or directory"
}

@test "show error: a FIFO instead of a pagemap does not hang" {
	run timeout 10 "$LAZY_UFFD" show "$IMG/fifo"
	[ "$status" -eq 1 ]
	[ "$output" = "lazy-uffd: error: $IMG/fifo/pagemap-1.img: not a regular file" ]
}

@test "show error: parent loop" {
	expect_error loop "$IMG/loop/b/parent: parent loop: $IMG/loop/b/.. is $(realpath "$IMG/loop"), already in the chain"
}

@test "show error: PE_PARENT without a parent" {
	expect_error parent-missing "$IMG/parent-missing/pagemap-1.img: offset 26: entry 0x13000-0x15000 is PE_PARENT, but there is no $IMG/parent-missing/parent"
}

@test "show error: PE_PARENT range the parent does not cover" {
	local abs
	abs=$(realpath "$IMG/chain-uncovered")
	expect_error chain-uncovered "$IMG/chain-uncovered/pagemap-1.img: offset 70: PE_PARENT entry 0x1000c000-0x10010000: page 0x1000c000 is not in $abs/p1/pagemap-1.img"
}

@test "show error: PE_PARENT range that is only lazy below" {
	local abs
	abs=$(realpath "$IMG/chain-lazy-parent")
	expect_error chain-lazy-parent "$abs/p1/pagemap-1.img: offset 46: PE_PARENT entry 0x10006000-0x1000a000: page 0x10008000 is in $abs/p1/../p2/pagemap-1.img offset 28 with flags 0x2, which stores no data"
}
