#!/usr/bin/env bash
# make demo: checkpoint a process holding 1 GiB, restore it lazily with lazy-uffd's daemon,
# show what happened, and verify every byte. An eager restore of the same images runs
# first, for comparison.
#
# usage: mk/demo.sh BUILD_DIR CRIU_ENV [SIZE]
set -euo pipefail

build=$(realpath "${1:?build dir}")
# shellcheck source=/dev/null
. "${2:?criu env file}"
size=${3:-1G}

prog=$build/zdtm/anon
lazy=$build/lazy-uffd
noufd=$build/test/tools/no-uffd
dir=$build/demo
pids=()

die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }
cleanup() {
	local p
	for p in "${pids[@]}"; do
		# Only our own processes: SIGKILL by pid (a pid-namespace init ignores SIGTERM).
		[ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true
	done
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || die "needs root (checkpoint/restore)"
[ -x "$prog" ] && [ -x "$lazy" ] && [ -x "$noufd" ] || die "build first: make"

ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b - a) * 1000 }'; }
now() { date +%s.%N; }
json() { sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p" "$2" | head -n1; }

# start: the sample program, session leader and init of its own pid namespace.
start() {
	rm -f "$dir/pid" "$dir/out"
	setsid unshare -p -f setsid "$prog" --size "$size" --pidfile "$dir/pid" --outfile "$dir/out" \
		</dev/null >/dev/null 2>&1 &
	local i
	for ((i = 0; i < 600; i++)); do
		[ -s "$dir/pid" ] && { cat "$dir/pid"; return 0; }
		sleep 0.05
	done
	die "the sample program did not start"
}

# verify PID: ask it to check all of its memory; it writes PASS or FAIL: reason.
verify() {
	local pid=$1 i
	kill -TERM "$pid"
	for ((i = 0; i < 1200; i++)); do
		[ -e "/proc/$pid" ] && [ "$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$pid/stat" 2>/dev/null)" != Z ] ||
			break
		sleep 0.05
	done
	cat "$dir/out" 2>/dev/null || echo "no verdict"
}

rm -rf "$dir"
mkdir -p "$dir/img"

echo "lazy-uffd demo: lazy restore of a process holding $size (criu $CRIU_VERSION)"
echo

pid=$(start)
pids+=("$pid")
t0=$(now)
"$CRIU" dump -t "$pid" -D "$dir/img" -o dump.log -v4 >/dev/null 2>&1 || die "criu dump failed: see $dir/img/dump.log"
t1=$(now)
imgsz=$(du -sm "$dir/img" | awk '{ print $1 }')
printf '  checkpoint   criu dump                      %6s ms   (%s MiB of images)\n' "$(ms "$t0" "$t1")" "$imgsz"

# Eager restore of the same images: every page is read before the process may run.
t0=$(now)
"$CRIU" restore -d -D "$dir/img" -o restore-eager.log -v4 --pidfile eager.pid >/dev/null 2>&1 ||
	die "criu restore failed: see $dir/img/restore-eager.log"
t1=$(now)
epid=$(cat "$dir/img/eager.pid")
pids+=("$epid")
eager_ms=$(ms "$t0" "$t1")
printf '  eager        criu restore                   %6s ms   until the process runs\n' "$eager_ms"
everdict=$(verify "$epid")
[ "$everdict" = PASS ] || die "eager restore verdict: $everdict"

# lazy_restore TAG [WRAPPER...] -- [CRIU RESTORE OPTIONS...]: start our daemon, restore
# lazily (criu run through WRAPPER), have the process check every byte while the daemon
# fills the rest; prints the figures. Sets lazy_ms and verdict.
lazy_restore() {
	local tag=$1 wrap=() opts=() t0 t1 lpid drc=0 st=$dir/stats-$1.json
	shift
	while [ $# -gt 0 ] && [ "$1" != -- ]; do wrap+=("$1"); shift; done
	[ $# -gt 0 ] && shift
	opts=("$@")
	rm -f "$dir/ready" "$st"
	mkfifo "$dir/ready"
	"$lazy" daemon -D "$dir/img" -o "lazy-pages-$tag.log" -v4 --status-fd 3 --stats "$st" \
		3>"$dir/ready" </dev/null >/dev/null 2>&1 &
	dpid=$!
	pids+=("$dpid")
	head -c1 "$dir/ready" >/dev/null
	t0=$(now)
	"${wrap[@]}" "$CRIU" restore -d -D "$dir/img" --lazy-pages -o "restore-$tag.log" -v4 \
		--pidfile "$tag.pid" "${opts[@]}" >/dev/null 2>&1 ||
		die "criu restore --lazy-pages ($tag) failed: see $dir/img/restore-$tag.log"
	t1=$(now)
	lpid=$(cat "$dir/img/$tag.pid")
	pids+=("$lpid")
	lazy_ms=$(ms "$t0" "$t1")
	printf '  lazy         criu restore --lazy-pages      %6s ms   until the process runs\n' "$lazy_ms"

	# The process reads all of its memory at once, racing the background copy.
	verdict=$(verify "$lpid")
	wait "$dpid" || drc=$?
	[ "$drc" = 0 ] || die "the daemon exited with $drc: see $dir/img/lazy-pages-$tag.log"

	printf '               faults served                  %6s      (%s pages; median %s us, p99 %s us)\n' \
		"$(json faults "$st")" "$(json pages_fault "$st")" "$(json median "$st")" "$(json p99 "$st")"
	printf '               copied in the background       %6s pages\n' "$(json pages_background "$st")"
	printf '               full population                %6.0f ms   after the restore finished (%s GB/s)\n' \
		"$(awk -v s="$(json populate_seconds "$st")" 'BEGIN { print s * 1000 }')" "$(json gbytes_per_second "$st")"
	printf '               daemon peak RSS                %6s MiB\n' "$(($(json daemon_max_rss_kib "$st") / 1024))"
	printf '               memory check                   %6s      every byte of %s\n' "$verdict" "$size"
	[ "$verdict" = PASS ] || die "lazy restore ($tag) verdict: $verdict"
}

# Lazy restore: the daemon serves faults from the images and fills the rest behind.
lazy_restore plain --
echo
awk -v e="$eager_ms" -v l="$lazy_ms" 'BEGIN { if (l > 0) printf "  the process ran %.1fx sooner than with an eager restore\n", e / l }'
echo

# The same with userfaultfd(2) refused (as container seccomp profiles do): plain criu
# fails, criu with our plugin makes its uffds through /dev/userfaultfd.
echo "with userfaultfd(2) refused (EPERM, as Docker's seccomp profile does):"
rm -f "$dir/ready"
mkfifo "$dir/ready"
"$lazy" daemon -D "$dir/img" -o lazy-pages-refused.log --status-fd 3 3>"$dir/ready" </dev/null >/dev/null 2>&1 &
dpid=$!
pids+=("$dpid")
head -c1 "$dir/ready" >/dev/null
if "$noufd" --errno EPERM -- "$CRIU" restore -d -D "$dir/img" --lazy-pages -o restore-refused.log \
	--pidfile refused.pid >/dev/null 2>&1; then
	die "criu restore --lazy-pages worked with userfaultfd(2) refused: the restriction did not apply"
fi
# The daemon sees the restore give up and exits by itself; bounded all the same.
for ((i = 0; i < 200; i++)); do
	kill -0 "$dpid" 2>/dev/null || break
	sleep 0.05
done
kill -KILL "$dpid" 2>/dev/null || true
wait "$dpid" 2>/dev/null || true
printf '  without the plugin  criu restore --lazy-pages fails: %s\n' \
	"$(grep -m1 -o 'Unable to open an userfaultfd descriptor\|Lazy pages are not [a-z]*\|connect to lazy-pages.socket failed' \
		"$dir/img/restore-refused.log" || echo 'see restore-refused.log')"
echo "  with the plugin     criu -L $build restore --lazy-pages:"
lazy_restore plugin "$noufd" --errno EPERM -- -L "$build"
grep -m1 -o 'lazy_uffd: .*/dev/userfaultfd[^)]*' "$dir/img/restore-plugin.log" | sed 's/^/  plugin log: /' || true
echo
echo "  logs and images: $dir/img"
