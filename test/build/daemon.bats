#!/usr/bin/env bats
# `lazy-uffd daemon` before any restore: what it refuses at startup and what it leaves
# behind, on synthetic images (test/unit/mkimg), without criu or root.

load ../lib

setup() {
	local mkimg=$LU_BUILD/test/unit/mkimg
	[ -x "$mkimg" ] || { echo "$mkimg is missing: run make check-unit" >&2; return 1; }
	IMG=$BATS_TEST_TMPDIR/img
	WORK=$BATS_TEST_TMPDIR/work
	"$mkimg" good41 "$IMG"
	mkdir -p "$WORK"
	PIDS=()
}

teardown() {
	local p
	no_daemon_with "" >/dev/null || true
	for p in "${PIDS[@]}"; do
		kill -KILL "$p" 2>/dev/null || true
	done
}

# start_detached PIDFILE [ARGS...]: a daemon with --daemon on $WORK; its pid in PIDS.
start_detached() {
	local pidfile=$1 pid
	shift
	"$LAZY_UFFD" daemon -D "$IMG" -W "$WORK" -o "$pidfile.log" -v4 --daemon --pidfile "$pidfile" \
		"$@" </dev/null
	pid=$(cat "$WORK/$pidfile")
	PIDS+=("$pid")
	kill -0 "$pid"
}

# run_daemon ARGS...: like bats' run, for `lazy-uffd daemon` (10 s at most). Output goes
# through a file: a daemon that forked by mistake would keep a pipe open forever.
run_daemon() {
	local out=$BATS_TEST_TMPDIR/daemon.out
	status=0
	timeout 10 "$LAZY_UFFD" daemon "$@" >"$out" 2>&1 || status=$?
	output=$(cat "$out")
	echo "exit $status: $output"
}

# fake_restore: play criu restore's side of lazy-pages.socket in $WORK for the zombie
# images: task 1 hands over a uffd with the images' lazy VMA registered (the daemon copies
# its page, or finds the task gone), task 2 is a zombie, then the finish word. The daemon
# exits 0.
fake_restore() {
	python3 - "$WORK" <<-'EOF'
		import array, ctypes, os, socket, struct, sys
		os.chdir(sys.argv[1])
		libc = ctypes.CDLL(None, use_errno=True)
		# x86_64 userfaultfd; UFFD_USER_MODE_ONLY (1) works without privilege.
		uffd = libc.syscall(323, os.O_CLOEXEC | os.O_NONBLOCK | 1)
		if uffd < 0:
		    print("userfaultfd: " + os.strerror(ctypes.get_errno()))
		    sys.exit(77)
		api = bytearray(struct.pack("QQQ", 0xAA, 0, 0))
		if libc.ioctl(uffd, 0xC018AA3F, (ctypes.c_char * 24).from_buffer(api)) < 0:
		    sys.exit("UFFDIO_API: " + os.strerror(ctypes.get_errno()))
		# The images' one lazy VMA, registered as the restorer does: the daemon checks it.
		libc.mmap.restype = ctypes.c_void_p
		libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
		# PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE
		if libc.mmap(0x10000, 4096, 3, 0x02 | 0x20 | 0x100000, -1, 0) != 0x10000:
		    print("mmap at 0x10000: " + os.strerror(ctypes.get_errno()))
		    sys.exit(77)
		reg = bytearray(struct.pack("QQQQ", 0x10000, 4096, 1, 0))
		if libc.ioctl(uffd, 0xC020AA00, (ctypes.c_char * 32).from_buffer(reg)) < 0:
		    sys.exit("UFFDIO_REGISTER: " + os.strerror(ctypes.get_errno()))
		s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
		s.connect("lazy-pages.socket")
		s.sendall(struct.pack("i", 1))
		s.sendmsg([b"\0"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [uffd]))])
		s.sendall(struct.pack("i", -2) + struct.pack("I", 0x52535446))
		s.close()
	EOF
}

# serve_fake ARGS...: the daemon on the zombie images with ARGS, served by fake_restore;
# sets status and output (stdout and stderr) like run.
serve_fake() {
	local out=$BATS_TEST_TMPDIR/serve.out pid i rc=0
	command -v python3 >/dev/null || { lu_skip "python3 plays criu restore here"; return; }
	[ "$(uname -m)" = x86_64 ] || { lu_skip "the fake restore knows x86_64's userfaultfd number only"; return; }
	"$LU_BUILD/test/unit/mkimg" zombie "$BATS_TEST_TMPDIR/zimg"
	"$LAZY_UFFD" daemon -D "$BATS_TEST_TMPDIR/zimg" -W "$WORK" "$@" </dev/null >"$out" 2>&1 &
	pid=$!
	for ((i = 0; i < 100; i++)); do
		[ -S "$WORK/lazy-pages.socket" ] && break
		sleep 0.05
	done
	fake_restore || rc=$?
	if [ "$rc" != 0 ]; then
		kill -KILL "$pid"
		wait "$pid" || true
		[ "$rc" = 77 ] && { lu_skip "no userfaultfd for the fake restore"; return; }
		return 1
	fi
	status=0
	timeout 10 tail --pid="$pid" -f /dev/null || { kill -KILL "$pid"; echo "daemon still runs"; }
	wait "$pid" || status=$?
	output=$(cat "$out")
	echo "exit $status: $output"
}

# no_daemon_with ARG: no lazy-uffd daemon on $WORK has ARG on its command line (any found
# are killed at teardown).
no_daemon_with() {
	local p cmd found=0
	for p in /proc/[0-9]*; do
		cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
		if [[ $cmd == *"lazy-uffd daemon "*"-W $WORK "*"$1"* ]]; then
			echo "still running: ${p#/proc/} $cmd"
			PIDS+=("${p#/proc/}")
			found=1
		fi
	done
	[ "$found" = 0 ]
}

@test "daemon: --daemon --pidfile F with F present exits 1 before forking, and the running daemon keeps the socket" {
	start_detached first.pid
	ino=$(stat -c %i "$WORK/lazy-pages.socket")
	echo 123 >"$WORK/taken.pid"
	run_daemon -D "$IMG" -W "$WORK" -v4 --daemon --pidfile taken.pid </dev/null
	[ "$status" -eq 1 ]
	[[ "$output" == *"Error (lazy-pages/cli.c:"*"): --pidfile taken.pid: File exists"* ]]
	[ "$(cat "$WORK/taken.pid")" = 123 ]
	sleep 0.2
	no_daemon_with taken.pid
	[ "$(stat -c %i "$WORK/lazy-pages.socket")" = "$ino" ]
	kill -0 "${PIDS[0]}"
}

@test "daemon: a lazy-pages.socket another daemon listens on is not taken over; a stale one is replaced" {
	start_detached first.pid
	first=${PIDS[0]}
	ino=$(stat -c %i "$WORK/lazy-pages.socket")
	run_daemon -D "$IMG" -W "$WORK" -v4 --daemon --pidfile second.pid </dev/null
	[ "$status" -eq 1 ]
	[[ "$output" == *"Error (lazy-pages/handoff.c:"*"): $WORK/lazy-pages.socket: another daemon listens on it; give this one another work dir (-W)"* ]]
	[ ! -e "$WORK/second.pid" ]
	[ "$(stat -c %i "$WORK/lazy-pages.socket")" = "$ino" ]
	sleep 0.2
	no_daemon_with second.pid
	# The check did not disturb the first daemon: it is still waiting for criu restore.
	kill -0 "$first"
	run grep -E 'Error|Warn' "$WORK/first.pid.log"
	[ "$status" -eq 1 ]

	# Without --daemon too.
	run_daemon -D "$IMG" -W "$WORK" -v4 </dev/null
	[ "$status" -eq 1 ]
	[[ "$output" == *"$WORK/lazy-pages.socket: another daemon listens on it"* ]]

	# Once the first is gone its socket is stale: the next daemon replaces it.
	kill -KILL "$first"
	while kill -0 "$first" 2>/dev/null; do sleep 0.05; done
	start_detached third.pid
	grep -F "listening on $WORK/lazy-pages.socket" "$WORK/third.pid.log"
}

@test "daemon: --stats FILE replaces FILE by a rename, never writes into it" {
	echo old >"$BATS_TEST_TMPDIR/keep"
	ln "$BATS_TEST_TMPDIR/keep" "$BATS_TEST_TMPDIR/stats.json"
	serve_fake --stats "$BATS_TEST_TMPDIR/stats.json"
	[ "$status" -eq 0 ]
	# A file written in place would have changed under its other name too.
	[ "$(cat "$BATS_TEST_TMPDIR/keep")" = old ]
	python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert [t["pid"] for t in d["tasks"]] == [1]' \
		"$BATS_TEST_TMPDIR/stats.json"
	[ "$(stat -c %a "$BATS_TEST_TMPDIR/stats.json")" = "$(printf '%o' $((0666 & ~0$(umask))))" ]
	# No temporary file left beside it.
	[ "$(ls "$BATS_TEST_TMPDIR" | grep -c stats)" = 1 ]
}

@test "daemon: the log file is created mode 0600, as criu's" {
	umask 022
	serve_fake -o lazy.log
	[ "$status" -eq 0 ]
	[ "$(stat -c %a "$WORK/lazy.log")" = 600 ]
}

@test "daemon: criu lazy-pages' --log-pid, -j/--shell-job and --display-stats are accepted" {
	serve_fake -o lazy.log -v4 --log-pid -j --shell-job --display-stats
	[ "$status" -eq 0 ]
	# --display-stats: the --stats JSON on stdout (the log went to lazy.log).
	python3 -c 'import json, sys; d = json.loads(sys.argv[1]); assert [t["pid"] for t in d["tasks"]] == [1]' "$output"
	# --log-pid leaves the log where criu lazy-pages leaves it.
	[ "$(ls "$WORK" | grep -c '^lazy\.log')" = 1 ]
	grep -F "all tasks complete" "$WORK/lazy.log"
}

@test "daemon: --ps-socket takes only a connected stream socket, with --page-server" {
	# Not a socket: refused before anything listens.
	run_daemon -D "$IMG" -W "$WORK" --page-server --ps-socket 5 5</dev/null </dev/null
	[ "$status" -eq 2 ]
	[ "$output" = "lazy-uffd: error: --ps-socket 5: not a stream socket (a connection to the page server is expected)" ]
	[ ! -e "$WORK/lazy-pages.socket" ]
	# A socket, but a datagram one.
	run_daemon -D "$IMG" -W "$WORK" --page-server --ps-socket 5 5<>/dev/udp/127.0.0.1/9 </dev/null
	[ "$status" -eq 2 ]
	[ "$output" = "lazy-uffd: error: --ps-socket 5: not a stream socket (a connection to the page server is expected)" ]
	# A stream socket, but not connected (bound only).
	run python3 -c '
import os, socket, subprocess, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
os.dup2(s.fileno(), 5)
sys.exit(subprocess.run(sys.argv[1:], pass_fds=[5], timeout=10).returncode)' \
		"$LAZY_UFFD" daemon -D "$IMG" -W "$WORK" --page-server --ps-socket 5
	[ "$status" -eq 2 ]
	[ "$output" = "lazy-uffd: error: --ps-socket 5: not connected (Transport endpoint is not connected)" ]
	# No such fd.
	run_daemon -D "$IMG" -W "$WORK" --page-server --ps-socket 7 7<&- </dev/null
	[ "$status" -eq 2 ]
	[ "$output" = "lazy-uffd: error: --ps-socket 7: Bad file descriptor" ]
	run_daemon -D "$IMG" -W "$WORK" --page-server --ps-socket x </dev/null
	[ "$status" -eq 2 ]
	[ "$output" = "lazy-uffd: error: bad --ps-socket 'x' (a file descriptor)" ]
	run_daemon -D "$IMG" -W "$WORK" --ps-socket 0 0</dev/null
	[ "$status" -eq 2 ]
	[[ "$output" == *"--ps-socket 0: not a stream socket"* ]]
	[ ! -e "$WORK/lazy-pages.socket" ]
}

@test "daemon: --config FILE in criu's syntax; the command line overrides it; an option we lack is refused" {
	local conf=$BATS_TEST_TMPDIR/lazy.conf stats="$BATS_TEST_TMPDIR/a \"b\" c.json"
	cat >"$conf" <<-CONF
		# criu's syntax: long options without '--'
		log-file from-config.log   # overridden below
		verbosity 4
		stats "$BATS_TEST_TMPDIR/a \"b\" c.json"
		shell-job
		no-default-config
	CONF
	serve_fake --config "$conf" -o cmdline.log
	[ "$status" -eq 0 ]
	[ -s "$stats" ]
	[ ! -e "$WORK/from-config.log" ]
	grep -F "listening on $WORK/lazy-pages.socket" "$WORK/cmdline.log"

	printf 'verbosity 4\n\ntcp-established\n' >"$conf"
	run_daemon --config "$conf" -D "$IMG" -W "$WORK" </dev/null
	[ "$status" -eq 2 ]
	[ "$output" = "lazy-uffd: error: --config $conf: line 3: 'tcp-established' is not an option of lazy-uffd daemon (see --help)" ]
	printf 'stats\n' >"$conf"
	run_daemon --config="$conf" -D "$IMG" -W "$WORK" </dev/null
	[ "$status" -eq 2 ]
	[ "$output" = "lazy-uffd: error: --config $conf: line 1: 'stats' needs an argument" ]
	printf 'work-dir "/tmp\n' >"$conf"
	run_daemon --config "$conf" -D "$IMG" </dev/null
	[ "$status" -eq 2 ]
	[ "$output" = "lazy-uffd: error: --config $conf: line 1: no closing quote" ]
	printf 'verbosity 4\n' >"$conf"
	run_daemon --conf "$conf" -D "$IMG" </dev/null
	[ "$status" -eq 2 ]
	[ "$output" = "lazy-uffd: error: --config $conf: give one --config, as --config FILE or --config=FILE" ]
	run_daemon --config "$conf" --config "$BATS_TEST_TMPDIR/none.conf" -D "$IMG" </dev/null
	[ "$status" -eq 2 ]
	run_daemon --config "$BATS_TEST_TMPDIR/none.conf" -D "$IMG" </dev/null
	[ "$status" -eq 2 ]
	[ "$output" = "lazy-uffd: error: --config $BATS_TEST_TMPDIR/none.conf: No such file or directory" ]
}

@test "daemon: log lines have criu's form, which zdtm's and runc's greps look for" {
	serve_fake -o lazy.log -v4 --status-fd 9 9<&-
	[ "$status" -eq 0 ]
	cat "$WORK/lazy.log"
	# criu 4.1 writes 'Warn  (file:line): ' (two spaces, lined up with 'Error (').
	grep -Eq '^\( *[0-9]+\.[0-9]{6}\) Warn  \(lazy-pages/cli\.c:[0-9]+\): --status-fd 9: Bad file descriptor$' \
		"$WORK/lazy.log"
	touch "$WORK/p"
	run_daemon -D "$IMG" -W "$WORK" -o lazy.log --pidfile p --daemon </dev/null
	[ "$status" -eq 1 ]
	grep -Eq '^\( *[0-9]+\.[0-9]{6}\) Error \(lazy-pages/cli\.c:[0-9]+\): --pidfile p: File exists$' "$WORK/lazy.log"
}

@test "daemon and page-server: images written with another page size are refused, naming both sizes" {
	local port=$((27600 + RANDOM % 300)) out=$BATS_TEST_TMPDIR/ps.out
	local want="the images were written with 65536-byte pages, this system's page size is $(getconf PAGESIZE)"
	[ "$(getconf PAGESIZE)" != 65536 ] || skip "this system has 64 KiB pages"
	"$LU_BUILD/test/unit/mkimg" pages-64k "$BATS_TEST_TMPDIR/k64"
	run_daemon -D "$BATS_TEST_TMPDIR/k64" -W "$WORK" </dev/null
	[ "$status" -eq 1 ]
	[[ "$output" == *"pages-2.img: 262144 bytes are "*"pagemap-1.img's 4 present pages of 65536 bytes: $want"* ]]
	[ ! -e "$WORK/lazy-pages.socket" ]
	status=0
	timeout 10 "$LAZY_UFFD" page-server -D "$BATS_TEST_TMPDIR/k64" -W "$WORK" --address 127.0.0.1 \
		--port "$port" </dev/null >"$out" 2>&1 || status=$?
	cat "$out"
	[ "$status" -eq 1 ]
	grep -q "pages-2.img: 262144 bytes are .*$want" "$out"
	! grep -q "listening on" "$out"
}

@test "page-server: --daemon --pidfile F with F present exits 1 before listening, and nothing is left serving" {
	local port=$((27600 + RANDOM % 300)) out=$BATS_TEST_TMPDIR/ps.out
	echo 123 >"$WORK/taken.pid"
	status=0
	timeout 10 "$LAZY_UFFD" page-server -D "$IMG" -W "$WORK" -v4 --address 127.0.0.1 --port "$port" \
		--daemon --pidfile taken.pid </dev/null >"$out" 2>&1 || status=$?
	cat "$out"
	[ "$status" -eq 1 ]
	grep -Eq 'Error \(lazy-pages/cli\.c:[0-9]+\): --pidfile taken\.pid: File exists$' "$out"
	! grep -q "listening on" "$out"
	[ "$(cat "$WORK/taken.pid")" = 123 ]
	sleep 0.2
	[ -z "$(ss -Hltn "sport = :$port")" ]
}
