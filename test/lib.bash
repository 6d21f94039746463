# Shared helpers for every .bats file: `load ../lib` (from test/unit or test/zdtm).
#
# Environment (set by make): LAZY_UFFD_BUILD (the build dir), LAZY_UFFD_CRIU_ENV (the
# env file naming the criu binary). Running bats by hand falls back to build/ and 4.1.

LU_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LU_BUILD=${LAZY_UFFD_BUILD:-$LU_TOP/build}
LU_CRIU_ENV=${LAZY_UFFD_CRIU_ENV:-$LU_TOP/build/criu-4.1.env}
LAZY_UFFD=$LU_BUILD/lazy-uffd
# How tests that support it start the programs of LU_BUILD: directly, or through the
# emulator make check-cross names in LAZY_UFFD_EXEC (qemu-user and its options).
read -r -a LU_EXEC <<<"${LAZY_UFFD_EXEC:-}"

# Where ptrace hardware breakpoints never fire, criu hangs on every dump and restore
# unless told to step by syscalls (test/run.sh says so once; bats run by hand gets it here).
if [ -z "${CRIU_FAULT:-}" ] && [ -x "$LU_BUILD/test/tools/hwbp-probe" ]; then
	lu_hwbp=0
	"$LU_BUILD/test/tools/hwbp-probe" >/dev/null 2>&1 || lu_hwbp=$?
	[ "$lu_hwbp" != 1 ] || export CRIU_FAULT=130
fi

# lu_skip REASON: skip, unless CI demands that everything runs.
lu_skip() {
	if [ "${LAZY_UFFD_REQUIRE_ALL:-0}" = 1 ]; then
		echo "required test cannot run: $*" >&2
		return 1
	fi
	skip "$*"
}

# lu_native_only WHY: this test cannot run under make check-cross's emulator (WHY: what
# the emulator lacks); it is skipped there, and run.sh does not count that skip against
# LAZY_UFFD_REQUIRE_ALL: the native runs (make check) cover it.
lu_native_only() {
	[ ${#LU_EXEC[@]} -eq 0 ] || skip "emulated: $*"
}

# lu_require_root: integration tests need root (criu dump/restore, namespaces).
lu_require_root() {
	[ "$(id -u)" = 0 ] || lu_skip "needs root"
}

# lu_require_criu: source the env file; sets CRIU, CRIU_SERIES, CRIU_VERSION.
lu_require_criu() {
	[ -r "$LU_CRIU_ENV" ] || { lu_skip "no $LU_CRIU_ENV: run 'make deps'"; return; }
	# shellcheck source=/dev/null
	. "$LU_CRIU_ENV"
	[ -x "$CRIU" ] || lu_skip "criu from $LU_CRIU_ENV is not executable: $CRIU"
}

# lu_ns_init_of PID: the host pid of PID's first child (the init that `unshare -p -f`
# forks), or fail if it has none yet.
lu_ns_init_of() {
	local c
	c=$(cat /proc/"$1"/task/*/children 2>/dev/null | awk '{ print $1; exit }')
	[ -n "$c" ] && echo "$c"
}
