#!/usr/bin/env bash
# Run every *.bats file under the given directories and print one closing line:
#   N passed, N failed, N skipped
# With LAZY_UFFD_REQUIRE_ALL=1 a skipped test makes the run fail (CI sets it), except a
# test that cannot run under make check-cross's emulator (lu_native_only in lib.bash).
set -uo pipefail

files=()
for d in "$@"; do
	while IFS= read -r f; do files+=("$f"); done < <(find "$d" -name '*.bats' | sort)
done
[ ${#files[@]} -gt 0 ] || { echo "run.sh: no .bats files under $*" >&2; exit 1; }

# criu stops a task leaving its parasite or restorer on a hardware breakpoint; where
# those never fire (seen on a VM restored from a snapshot) every dump and restore hangs.
# CRIU_FAULT=130 is criu's own switch to step by syscalls instead.
probe=${LAZY_UFFD_BUILD:-build}/test/tools/hwbp-probe
[ -x "$probe" ] || probe=$(dirname "$0")/../build/test/tools/hwbp-probe
if [ -z "${CRIU_FAULT:-}" ] && [ -x "$probe" ]; then
	if why=$("$probe"); then
		:
	elif [ $? = 1 ]; then
		echo "run.sh: $why: criu runs with CRIU_FAULT=130 (no breakpoints)"
		export CRIU_FAULT=130
	fi
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
bats --tap ${LAZY_UFFD_BATS_FILTER:+--filter "$LAZY_UFFD_BATS_FILTER"} "${files[@]}" | tee "$log"
rc=${PIPESTATUS[0]}

passed=$(grep -cE '^ok [0-9]+' "$log" | tr -d ' ')
skipped=$(grep -cE '^ok [0-9]+ .*# skip' "$log" | tr -d ' ')
failed=$(grep -cE '^not ok [0-9]+' "$log" | tr -d ' ')
passed=$((passed - skipped))

echo "${passed} passed, ${failed} failed, ${skipped} skipped"
if [ "$failed" -gt 0 ] || [ "$rc" -ne 0 ]; then
	exit 1
fi
emulated=$(grep -cE '^ok [0-9]+ .*# skip emulated: ' "$log" | tr -d ' ')
if [ "${LAZY_UFFD_REQUIRE_ALL:-0}" = 1 ] && [ "$((skipped - emulated))" -gt 0 ]; then
	echo "run.sh: LAZY_UFFD_REQUIRE_ALL=1 and $((skipped - emulated)) test(s) skipped" >&2
	exit 1
fi
exit 0
