#!/usr/bin/env bats
# `lazy-uffd show` on a real dump by the criu in use: the VMAs are the process's
# /proc/PID/maps, and the present pages add up to the pages file. Needs root and criu.

bats_require_minimum_version 1.5.0
load ../lib

# join_adjacent: "START END PERMS" lines in, with touching equal-permission ranges joined.
join_adjacent() {
	awk 'NR > 1 && $1 == end && $3 == perms { end = $2; next }
	     NR > 1 { print start "-" end, perms }
	     { start = $1; end = $2; perms = $3 }
	     END { if (NR) print start "-" end, perms }'
}

teardown() {
	[ -z "${PID:-}" ] || kill -9 "$PID" 2>/dev/null || true
}

@test "show: a real criu dump matches the process's maps and pages file" {
	lu_require_root
	lu_require_criu
	local dir=$BATS_TEST_TMPDIR/img maps=$BATS_TEST_TMPDIR/maps
	mkdir "$dir"

	setsid sleep 1000 </dev/null >/dev/null 2>&1 &
	PID=$!
	# wait until the child has exec'd sleep, so the maps are the ones criu will see
	for _ in $(seq 50); do
		[ "$(readlink "/proc/$PID/exe")" != "$(readlink /proc/$$/exe)" ] && break
		sleep 0.1
	done
	cp "/proc/$PID/maps" "$maps"
	run "$CRIU" dump -t "$PID" -D "$dir" -o dump.log -v4
	[ "$status" -eq 0 ] || { tail -20 "$dir/dump.log"; false; }
	PID=

	run --separate-stderr "$LAZY_UFFD" show "$dir"
	printf '%s\n' "$output" "$stderr"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	[ "${lines[0]}" = "images $dir parents 0" ]
	[[ "${lines[1]}" =~ ^task\ [0-9]+\ ppid\ 0\ threads\ 1\ pagemap\ $CRIU_SERIES\ pages\ (pages-[0-9]+\.img)$ ]]
	local pages=$dir/${BASH_REMATCH[1]}

	# The VMAs are the mappings, same ranges and permissions in the same order. CRIU
	# stores [vvar] and [vvar_vclock] as one VMA, so adjacent ranges with equal
	# permissions are joined on both sides before comparing.
	diff -u <(awk '{ split($1, r, "-"); print "0x" r[1], "0x" r[2], $2 }' "$maps" |
		sed -E 's/0x0+([0-9a-f])/0x\1/g' | join_adjacent) \
		<(awk '$1 == "vma" { split($2, r, "-"); print r[1], r[2], $3 }' <<<"$output" | join_adjacent)

	# present pages fill the pages file exactly; the heap and stack are lazy
	local present
	present=$(awk '$1 == "total" { print $5 }' <<<"$output")
	[ "$((present * 4096))" -eq "$(stat -c %s "$pages")" ]
	[ "$present" -gt 0 ]
	awk '$1 == "vma" && $4 == "lazy"' <<<"$output" | grep -q .
	# vvar/vdso/vsyscall are never lazy
	local vdso
	vdso=$(awk '/\[vdso\]/ { split($1, r, "-"); print "0x" r[1] }' "$maps" | sed -E 's/0x0+/0x/')
	[ -z "$vdso" ] || awk -v s="$vdso" '$1 == "vma" && index($2, s "-") == 1' <<<"$output" | grep -q ' eager '
}
