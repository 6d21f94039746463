# What bench/bench.sh and bench/fanout.sh share: `. "$(dirname "$0")/lib.bash"` after
# setting BENCH_NAME (how their messages start). The test helpers they run on (lib.bash,
# zdtm.bash, remote.bash), where their programs (BIN) and results (OUT) are, how they
# fail, and the checks before a run.

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../test/lib.bash
. "$TOP/test/lib.bash"
# shellcheck source=../test/zdtm/zdtm.bash
. "$TOP/test/zdtm/zdtm.bash"
# shellcheck source=../test/zdtm/remote.bash
. "$TOP/test/zdtm/remote.bash"

BIN=$LU_BUILD/bench
OUT=${BENCH_OUT:-$LU_BUILD/bench}

die() {
	echo "$BENCH_NAME: FAILED: $*"
	exit 1
}

# bench_require TARGET PROG...: root, the criu of LU_CRIU_ENV (sourced: CRIU,
# CRIU_VERSION), and the programs PROG in BIN, which `make TARGET` builds.
bench_require() {
	local target=$1 f
	shift
	[ "$(id -u)" = 0 ] || die "needs root (checkpoint/restore, namespaces)"
	[ -r "$LU_CRIU_ENV" ] || die "no $LU_CRIU_ENV: run 'make deps'"
	# shellcheck source=/dev/null
	. "$LU_CRIU_ENV"
	for f in "$@"; do
		[ -x "$BIN/$f" ] || die "$BIN/$f is not built: make $target"
	done
}

# mib SIZE: 256M -> 256, 1G -> 1024.
mib() {
	case $1 in
	*G) echo $((${1%G} * 1024)) ;;
	*M) echo "${1%M}" ;;
	esac
}

# kv FILE KEY: the value of KEY=... in FILE (empty if absent).
kv() {
	sed -n "s/^$2=//p" "$1" 2>/dev/null | head -n 1
}

# bench_leave RC DIR WHAT: at exit, after the script's own processes went (by pid): the
# zdtm program's launcher and the network namespaces go; DIR too when RC is 0, else it
# stays for a look (it holds WHAT).
bench_leave() {
	zdtm_kill "${ZDTM_LAUNCHER:-}" unshare
	zdtm_remote_teardown >/dev/null 2>&1
	if [ "$1" = 0 ]; then
		rm -rf "$2"
	else
		echo "$BENCH_NAME: the failed run's $3 are in $2"
	fi
}
