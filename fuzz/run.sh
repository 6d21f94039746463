#!/usr/bin/env bash
# fuzz/run.sh BUILD SECONDS TARGET...: run each libFuzzer target for SECONDS (or until
# FUZZ_RUNS executions, if set, whichever comes first), starting
# from its seeds (fuzz/corpus/T) and past crashes (fuzz/regress/T); new inputs go to
# BUILD/corpus/T, a crashing input to BUILD/artifacts/. Prints executions per target and
# fails if any target crashed, leaked or hung.
set -u
build=$1 secs=$2
shift 2
top=$(cd "$(dirname "$0")/.." && pwd)
rc=0
summary=()
for t in "$@"; do
	bin=$build/fuzz/fuzz-$t
	work=$build/corpus/$t
	mkdir -p "$work" "$build/artifacts" "$top/fuzz/regress/$t"
	log=$build/fuzz-$t.log
	echo "fuzz: $t for ${secs}s (log $log)"
	"$bin" -max_total_time="$secs" -runs="${FUZZ_RUNS:--1}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$build/artifacts/$t-" "$work" "$top/fuzz/corpus/$t" "$top/fuzz/regress/$t" \
		>"$log" 2>&1
	r=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	if [ "$r" != 0 ]; then
		rc=1
		summary+=("$t: FAILED (exit $r) after ${execs:-?} executions; see $log and $build/artifacts/$t-*")
		grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$log" | head -n 5
	else
		summary+=("$t: ${execs:-?} executions in ${secs}s, no crash, leak or hang; corpus $(ls "$work" | wc -l) inputs")
	fi
done
printf '%s\n' "${summary[@]}"
exit $rc
