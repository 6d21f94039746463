#!/usr/bin/env bats
# Every lazy test of the daemon issue (test/zdtm/lazy*.bats) run with our daemon (the
# tests named "... ours: ...": the zdtm programs and the scenarios, the fork-after-restore
# test among them), again with criu's userfaultfd(2) refused, EPERM and then ENOSYS, and
# the plugin loaded for the restores. The zdtm harness runs unchanged: it is pointed
# (LAZY_UFFD_CRIU_ENV) at an env file whose criu is a wrapper that runs the real one under
# test/tools/no-uffd, adding `-L DIR` to restores and LD_PRELOAD to other commands. The
# restored tasks are criu's children, so the restriction covers them too; our daemon
# only receives uffds and runs as the harness starts it.
#
# One @test per restriction: it fails, listing the failed tests, if any nested test fails
# or skips, if fewer than SUITE_MIN ran, or if the fork test is missing.

load ../lib
load lu_plugin

SUITE_MIN=30

setup() {
	lu_require_root || return
	lu_require_criu || return
	[ -x "$NO_UFFD" ] || { lu_skip "$NO_UFFD is not built"; return; }
	[ -f "$PL_SO" ] || { lu_skip "$PL_SO is not built"; return; }
	[ -x "$LAZY_UFFD" ] || { lu_skip "$LAZY_UFFD is not built"; return; }
	[ -c /dev/userfaultfd ] || { lu_skip "no /dev/userfaultfd here (Linux >= 6.1 needed)"; return; }
}

# suite ERRNO: the nested run.
suite() {
	local err=$1 dir=$BATS_TEST_TMPDIR/suite-$1 tap rc=0 ran skipped failed
	tap=$dir/tap
	mkdir -p "$dir/bin" "$dir/plugins"
	cp "$PL_SO" "$dir/plugins/"
	# Named criu, so the harness's kills by comm still match the real process.
	cat >"$dir/bin/criu" <<-EOF
		#!/bin/sh
		# criu with userfaultfd(2) refused ($err); restores load lazy_uffd.so
		if [ "\$1" = restore ]; then
			shift
			exec "$NO_UFFD" --errno $err -- "$CRIU" restore -L "$dir/plugins" "\$@"
		fi
		# Other commands load no plugins: criu lazy-pages, for one, needs the preload.
		LD_PRELOAD="$PL_SO"
		export LD_PRELOAD
		exec "$NO_UFFD" --errno $err -- "$CRIU" "\$@"
	EOF
	chmod +x "$dir/bin/criu"
	# The wrapper's criu runs restricted (an empty /run: no kdat cache answers for it).
	run pl_fresh_run "$NO_UFFD" --errno "$err" -- "$CRIU" check --feature uffd-noncoop
	[ "$status" -ne 0 ] && [[ "$output" == *"UFFD is not supported"* ]] || { echo "$output"; return 1; }
	run pl_fresh_run "$dir/bin/criu" check --feature uffd-noncoop
	[ "$status" -eq 0 ] || { echo "$output"; return 1; }
	{
		echo "CRIU=$dir/bin/criu"
		echo "CRIU_SERIES=$CRIU_SERIES"
		echo "CRIU_VERSION=$CRIU_VERSION"
		echo "CRIU_PLUGIN_INCLUDE=$CRIU_PLUGIN_INCLUDE"
	} >"$dir/criu.env"

	LAZY_UFFD_CRIU_ENV=$dir/criu.env timeout 3600 bats --tap --filter ' ours: ' "$LU_TOP"/test/zdtm/lazy*.bats \
		>"$tap" 2>&1 || rc=$?

	ran=$(grep -cE '^ok [0-9]+' "$tap" || true)
	skipped=$(grep -cE '^ok [0-9]+ .*# skip' "$tap" || true)
	failed=$(grep -cE '^not ok [0-9]+' "$tap" || true)
	# Shown even when the test passes (bats prints fd 3).
	echo "# nested ($err): $((ran - skipped)) passed, $failed failed, $skipped skipped, bats rc $rc" >&3
	grep -E '^(ok|not ok) ' "$tap"
	if [ "$failed" != 0 ] || [ "$rc" != 0 ]; then
		# Each failed test with the harness's verdict and the program's FAIL line; the
		# whole TAP stream follows, for the criu and daemon logs.
		echo "--- failures"
		grep -E '^not ok |^# (zdtm: |--- .*test\.out|FAIL: )' "$tap"
		echo "--- nested TAP"
		cat "$tap"
		return 1
	fi
	[ "$skipped" = 0 ] || [ "${LAZY_UFFD_REQUIRE_ALL:-0}" != 1 ]
	[ $((ran - skipped)) -ge "$SUITE_MIN" ] || { echo "only $((ran - skipped)) lazy tests ran"; return 1; }
	grep -qE '^ok [0-9]+ .* ours: fork after restore' "$tap" || { echo "the fork test did not run"; return 1; }
}

@test "suite EPERM: every lazy zdtm test with our daemon, criu restricted, plugin loaded" {
	suite EPERM
}

@test "suite ENOSYS: every lazy zdtm test with our daemon, criu restricted, plugin loaded" {
	suite ENOSYS
}
