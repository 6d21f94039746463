# got_scan_check EXE: test/tools/got-scan finds the GOT slots through which EXE calls
# syscall() and ioctl() (the two the plugin redirects), exactly the ones readelf -r lists
# as their JUMP_SLOT and GLOB_DAT relocations. Shared by test/plugin (the x86_64 criu in
# use) and test/cross (Debian's arm64 criu, got-scan under qemu-user).
got_scan_check() {
	local exe=$1 want
	[ -r "$exe" ] || { echo "$exe is missing"; return 1; }
	want=$(readelf -rW "$exe" | awk '
		$3 ~ /_(JUMP_SLOT|GLOB_DAT)$/ && $5 ~ /^(syscall|ioctl)@/ {
			name = $5; sub(/@.*/, "", name)
			off = $1; sub(/^0+/, "", off)
			print name " 0x" off " " ($3 ~ /JUMP_SLOT$/ ? "JUMP_SLOT" : "GLOB_DAT")
		}' | sort)
	echo "readelf: $want"
	[[ "$want" == *"syscall 0x"* && "$want" == *"ioctl 0x"* ]]
	run "${LU_EXEC[@]}" "$LU_BUILD/test/tools/got-scan" "$exe" syscall ioctl
	echo "got-scan (exit $status): $output"
	[ "$status" -eq 0 ]
	[ "$(sort <<<"$output")" = "$want" ]
}
