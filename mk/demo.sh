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
[ -x "$prog" ] && [ -x "$lazy" ] || die "build first: make"

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

# Lazy restore: the daemon serves faults from the images and fills the rest behind.
rm -f "$dir/ready" "$dir/stats.json" "$dir/img/lazy-pages.log"
mkfifo "$dir/ready"
"$lazy" daemon -D "$dir/img" -o lazy-pages.log -v4 --status-fd 3 --stats "$dir/stats.json" \
	3>"$dir/ready" </dev/null >/dev/null 2>&1 &
dpid=$!
pids+=("$dpid")
head -c1 "$dir/ready" >/dev/null
t0=$(now)
"$CRIU" restore -d -D "$dir/img" --lazy-pages -o restore-lazy.log -v4 --pidfile lazy.pid >/dev/null 2>&1 ||
	die "criu restore --lazy-pages failed: see $dir/img/restore-lazy.log"
t1=$(now)
lpid=$(cat "$dir/img/lazy.pid")
pids+=("$lpid")
lazy_ms=$(ms "$t0" "$t1")
printf '  lazy         criu restore --lazy-pages      %6s ms   until the process runs\n' "$lazy_ms"

# The process reads all of its memory at once, racing the background copy.
verdict=$(verify "$lpid")
drc=0
wait "$dpid" || drc=$?
[ "$drc" = 0 ] || die "the daemon exited with $drc: see $dir/img/lazy-pages.log"

faults=$(json faults "$dir/stats.json")
pfault=$(json pages_fault "$dir/stats.json")
pbg=$(json pages_background "$dir/stats.json")
med=$(json median "$dir/stats.json")
p99=$(json p99 "$dir/stats.json")
pop=$(json populate_seconds "$dir/stats.json")
gbs=$(json gbytes_per_second "$dir/stats.json")
rss=$(json daemon_max_rss_kib "$dir/stats.json")
printf '               faults served                  %6s      (%s pages; median %s us, p99 %s us)\n' \
	"$faults" "$pfault" "$med" "$p99"
printf '               copied in the background       %6s pages\n' "$pbg"
printf '               full population                %6.0f ms   after the restore finished (%s GB/s)\n' \
	"$(awk -v s="$pop" 'BEGIN { print s * 1000 }')" "$gbs"
printf '               daemon peak RSS                %6s MiB\n' "$((rss / 1024))"
printf '               memory check                   %6s      every byte of %s\n' "$verdict" "$size"
echo
awk -v e="$eager_ms" -v l="$lazy_ms" 'BEGIN { if (l > 0) printf "  the process ran %.1fx sooner than with an eager restore\n", e / l }'
echo "  with the userfaultfd syscall blocked: arrives with the plugin (issue 4)"
echo "  logs and images: $dir/img"
[ "$verdict" = PASS ] || exit 1
