#!/usr/bin/env bats
# `make stress`: sizes too slow for make check. 8 GiB of anonymous memory dumped and
# restored lazily by our daemon, checked byte for byte, with the daemon's figures. Needs
# about 2 x 8 GiB of RAM (the dump's page cache and the restored process) and 8 GiB of
# disk under TMPDIR.

load ../lib
load ../zdtm/zdtm

setup() {
	lu_require_root || return
	lu_require_criu || return
	[ -x "$LAZY_UFFD" ] || { lu_skip "$LAZY_UFFD is not built"; return; }
	local avail
	avail=$(awk '/^MemAvailable:/ { print int($2 / 1048576) }' /proc/meminfo)
	[ "$avail" -ge 18 ] || { lu_skip "8 GiB stress needs 18 GiB of available memory, $avail GiB here"; return; }
	zdtm_setup
}

teardown() {
	zdtm_teardown
}

@test "stress ours: anon 8G restored lazily, byte-exact" {
	ZDTM_LAZY_TIMEOUT=600 ZDTM_STOP_TIMEOUT=600 zdtm_run_lazy ours anon --size 8G
	local s=$ZDTM_STATS
	echo "# $(grep -oE '"bytes": *[0-9]+' "$s" | tail -n 1 | awk -F: '{ printf "%.2f GiB", $2 / 2^30 }')" \
		"in $(grep -oE '"wall_seconds": *[0-9.]+' "$s" | awk -F: '{ print $2 + 0 }') s," \
		"$(grep -oE '"gbytes_per_second": *[0-9.]+' "$s" | awk -F: '{ print $2 + 0 }') GB/s," \
		"daemon peak RSS $(grep -oE '"daemon_max_rss_kib": *[0-9]+' "$s" | awk -F: '{ print $2 + 0 }') KiB," \
		"CPU $(grep -oE '"daemon_cpu_seconds": *[0-9.]+' "$s" | awk -F: '{ print $2 + 0 }') s" >&3
}
