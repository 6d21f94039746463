#!/usr/bin/env bats
# Who may talk to the daemon. lazy-pages.socket hands the daemon uffds and lets the peer
# decide which bytes a restored process gets: it is created mode 0600, and a peer of
# another uid that gets through anyway (a socket made reachable by hand) is refused by
# its SO_PEERCRED uid and logged, while the daemon goes on waiting for criu restore.

load ../lib
load zdtm

setup() {
	command -v python3 >/dev/null || { lu_skip "python3 is needed to connect as another uid"; return; }
	zdtm_setup_lazy
}

teardown() {
	zdtm_teardown
}

NOBODY=65534

# as_nobody_connect: connect to lazy-pages.socket as uid/gid NOBODY (the lookup is
# relative to the work dir, entered as root, so the test's private tmp dirs above it
# need no change) and print EACCES, EOF (the daemon closed it) or DATA.
as_nobody_connect() {
	python3 - "$ZDTM_WORK" "$NOBODY" <<-'EOF'
		import os, socket, sys
		os.chdir(sys.argv[1])
		uid = int(sys.argv[2])
		os.setgroups([])
		os.setgid(uid)
		os.setuid(uid)
		s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
		try:
		    s.connect("lazy-pages.socket")
		except PermissionError:
		    print("EACCES")
		    sys.exit(0)
		s.settimeout(20)
		print("EOF" if s.recv(1) == b"" else "DATA")
	EOF
}

# finish_restore: the real restore after the intruder, byte-exact, clean daemon exit.
finish_restore() {
	ZDTM_RWORK=$ZDTM_WORK
	zdtm_restore -W "$ZDTM_WORK" --lazy-pages || return 1
	zdtm_stop || return 1
	zdtm_expect_pass || return 1
	zdtm_lazy_finish
}

@test "socket: lazy-pages.socket is mode 0600; another uid cannot connect; the restore goes on" {
	zdtm_start anon --size 16M --expect-lazy --settle
	zdtm_dump
	zdtm_lazy_start_daemon ours
	run stat -c %a "$ZDTM_WORK/lazy-pages.socket"
	[ "$output" = 600 ] || { echo "mode $output"; return 1; }
	run as_nobody_connect
	[ "$status" = 0 ] && [ "$output" = EACCES ] || { echo "$output"; return 1; }
	finish_restore
}

@test "socket: a peer of another uid is refused by SO_PEERCRED and logged; the restore goes on" {
	zdtm_start anon --size 16M --expect-lazy --settle
	zdtm_dump
	zdtm_lazy_start_daemon ours
	chmod 0666 "$ZDTM_WORK/lazy-pages.socket"
	run as_nobody_connect
	[ "$status" = 0 ] && [ "$output" = EOF ] || { echo "$output"; return 1; }
	run grep -E "Warn .*refused a connection on lazy-pages.socket from pid [0-9]+ uid $NOBODY: only root may hand over uffds" \
		"$ZDTM_WORK/lazy.log"
	[ "$status" = 0 ] || { cat "$ZDTM_WORK/lazy.log"; return 1; }
	finish_restore
}
