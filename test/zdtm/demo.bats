#!/usr/bin/env bats
# make demo's script, on a smaller process: both lazy restores verify every byte, and the
# restriction is shown to bite without the plugin.

load ../lib

@test "demo: mk/demo.sh restores lazily, with and without userfaultfd(2) refused" {
	lu_require_root || return
	lu_require_criu || return
	run "$LU_TOP/mk/demo.sh" "$LU_BUILD" "$LU_CRIU_ENV" 64M
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(grep -c 'memory check  *PASS  *every byte of 64M' <<<"$output")" = 2 ]
	grep -q 'without the plugin  criu restore --lazy-pages fails: Unable to open an userfaultfd descriptor' <<<"$output"
	grep -q 'plugin log: lazy_uffd: userfaultfd(2) fails with EPERM' <<<"$output"
	grep -q 'the process ran .*x sooner than with an eager restore' <<<"$output"
}
