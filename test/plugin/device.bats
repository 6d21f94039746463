#!/usr/bin/env bats
# The device path when /dev/userfaultfd is out of reach (userfaultfd(2) refused with EPERM
# throughout):
#  - hidden or unusable in criu's mount namespace at plugin init (a mode-0000 copy on a
#    nodev mount, no node at all, /dev/null bound over it): the restore fails in plugin
#    init, before any task exists, with one error naming cause and fix; nothing survives;
#  - hidden only after plugin init (criu's pre-restore action script binds /dev/null over
#    it, before the tasks are forked): the tasks still get uffds, through the device fd
#    the plugin opened at init and kept in CRIU's fdstore. CRIU here cannot restore a task
#    into a mount namespace of its own (it refuses to dump one), so this stands in for a
#    task whose namespace lacks the device;
#  - preloaded only (no plugin init), the task must open the device itself and fails,
#    saying the plugin would have avoided it;
#  - EVENT_FORK refused (no CAP_SYS_PTRACE): refused, unless LAZY_UFFD_ALLOW_NO_FORK_EVENT=1.

load ../lib
load ../zdtm/zdtm
load lu_plugin

setup() {
	pl_setup
}

teardown() {
	pl_teardown
}

# fails_in_init KIND REGEX: restore with the device made unusable (hide-device KIND)
# fails at once in plugin init with an error matching REGEX. CRIU's daemon serves it: ours
# would hand criu the device it can open outside criu's mount namespace (below).
fails_in_init() {
	local hide=$1 re=$2
	pl_start anon --size 1M
	zdtm_dump
	pl_daemon criu
	pl_restore "$PL_HIDE" "$hide" "$NO_UFFD" --errno EPERM -- -L "$PL_DIR"
	[ "$PL_RC" -ne 0 ] || { pl_diag; false; }
	[ "$PL_SECS" -le 10 ]
	grep -E "Error \(plugin/plugin.c:[0-9]+\): lazy_uffd: criu restore --lazy-pages cannot work: $re" "$PL_LOG" ||
		{ pl_diag; false; }
	grep -q 'Failed in init(2) of "lazy_uffd"' "$PL_LOG"
	# criu unloads the plugin without calling its exit: init put the slots back itself,
	# and criu ended normally (1), not on a call into the unloaded library.
	grep -q "lazy_uffd: criu's syscall() and ioctl() GOT slots are back as they were" "$PL_LOG"
	[ "$PL_RC" = 1 ] || { echo "criu exited $PL_RC"; false; }
	# Before any task: none was forked, none sent a uffd.
	[ "$(pl_count 'Forking task|uffd: Sending PID' "$PL_LOG")" = 0 ]
	pl_stop_daemon
	pl_no_survivor
}

@test "device: a mode-0000 copy on a nodev mount: permission denied, with owner, group, mode and the fix" {
	fails_in_init nodev "permission denied opening /dev/userfaultfd \(owner root\(0\), group root\(0\), mode 0000 c---------\): the mount holding it is nodev.*fix: bind-mount the host's /dev/userfaultfd"
}

@test "device: no /dev/userfaultfd at all: says so, names kernel 6.1 and CONFIG_USERFAULTFD, and how to add it" {
	fails_in_init gone "/dev/userfaultfd does not exist: the kernel is older than 6.1 or built without CONFIG_USERFAULTFD.*fix: bind-mount the host's /dev/userfaultfd into it, or create it with 'mknod -m 0660 /dev/userfaultfd c 10 257'"
}

# handed_over KIND: the same hidden device, with our daemon: it opens the node where it
# runs and hands criu the fd; the lazy restore is byte-exact.
handed_over() {
	pl_start anon --size 4M
	zdtm_dump
	pl_daemon ours
	pl_restore "$PL_HIDE" "$1" "$NO_UFFD" --errno EPERM -- -L "$PL_DIR"
	pl_finish
	grep -qE "lazy_uffd: userfaultfd\(2\) fails with EPERM: /dev/userfaultfd cannot be opened here \($2\); the lazy-pages daemon handed us its fd" "$PL_LOG" ||
		{ pl_diag; false; }
	grep -q "handed /dev/userfaultfd to pid" "$ZDTM_IMG/lazy.log"
}

@test "device: a mode-0000 copy on a nodev mount, with our daemon: it hands criu the device" {
	handed_over nodev EACCES
}

@test "device: no /dev/userfaultfd in criu's mount namespace, with our daemon: it hands criu the device" {
	handed_over gone ENOENT
}

@test "device: /dev/null bound over it: the ioctl is refused; names what stands there" {
	fails_in_init null "/dev/userfaultfd is char device 1:3, not the userfaultfd device \(char 10:257\): it is hidden or replaced.*USERFAULTFD_IOC_NEW failed: ENOTTY.*fix:"
}

@test "device: hidden after plugin init (pre-restore action script): the tasks use the fd kept at init" {
	local script=$BATS_TEST_TMPDIR/hide.sh
	cat >"$script" <<-EOF
		#!/bin/sh
		[ "\$CRTOOLS_SCRIPT_ACTION" = pre-restore ] || exit 0
		mount --bind /dev/null /dev/userfaultfd || exit 1
		stat -c %t:%T /dev/userfaultfd >"$BATS_TEST_TMPDIR/hidden"
	EOF
	chmod +x "$script"
	pl_start tree --size 1M
	zdtm_dump
	pl_daemon ours
	pl_restore unshare -m --propagation private "$NO_UFFD" --errno EPERM -- -L "$PL_DIR" --action-script "$script"
	pl_finish
	# The node was /dev/null (1:3) while the tasks made their uffds...
	[ "$(cat "$BATS_TEST_TMPDIR/hidden")" = 1:3 ]
	grep -n 'lazy_uffd: userfaultfd(2) fails with EPERM' "$PL_LOG"
	grep -n 'Running pre-restore scripts\|pre-restore' "$PL_LOG" | head -n 3
	# ...after plugin init had opened the device...
	local init hide first
	init=$(grep -n "CRIU's uffds will be made through /dev/userfaultfd, opened now" "$PL_LOG" | cut -d: -f1)
	hide=$(grep -n 'pre-restore' "$PL_LOG" | head -n 1 | cut -d: -f1)
	first=$(grep -n 'lazy_uffd: uffd [0-9]* made through /dev/userfaultfd' "$PL_LOG" | head -n 1 | cut -d: -f1)
	[ -n "$init" ] && [ -n "$hide" ] && [ -n "$first" ]
	[ "$init" -lt "$hide" ] && [ "$hide" -lt "$first" ]
	# ...and every task of the tree got one.
	[ "$(pl_count 'lazy_uffd: uffd [0-9]+ made through /dev/userfaultfd .* 0x4e' "$PL_LOG")" = 4 ]
}

@test "device: hidden after init with the library only preloaded: the task cannot open it and says why" {
	local script=$BATS_TEST_TMPDIR/hide.sh
	cat >"$script" <<-'EOF'
		#!/bin/sh
		[ "$CRTOOLS_SCRIPT_ACTION" = pre-restore ] || exit 0
		exec mount --bind /dev/null /dev/userfaultfd
	EOF
	chmod +x "$script"
	pl_start tree --size 1M
	zdtm_dump
	pl_daemon ours
	pl_restore unshare -m --propagation private env LD_PRELOAD="$PL_SO" "$NO_UFFD" --errno EPERM -- \
		--action-script "$script"
	[ "$PL_RC" -ne 0 ] || { pl_diag; false; }
	grep -E '[0-9]+: Error \(plugin/redirect.c:[0-9]+\): lazy_uffd: /dev/userfaultfd is char device 1:3, not the userfaultfd device.*\(or also load lazy_uffd.so as a CRIU plugin, criu restore -L DIR' "$PL_LOG" ||
		{ pl_diag; false; }
	grep -q 'Unable to open an userfaultfd descriptor' "$PL_LOG"
	pl_stop_daemon
	pl_no_survivor
}

@test "device: a lazy restore CRIU is told about only by a config file: refused in plugin init all the same" {
	# Not on the command line (as with RPC): the plugin sees the lazy restore by the
	# lazy-pages.socket its daemon listens on in criu's work dir, and fails it before any
	# task is forked, naming the true cause (before: a note, then the first task failed).
	printf 'lazy-pages\n' >"$BATS_TEST_TMPDIR/lazy.conf"
	pl_start tree --size 1M
	zdtm_dump
	pl_daemon criu # ours would hand criu the device from outside its mount namespace
	PL_RC=0
	pl_gone "$NO_UFFD" --errno EPERM -- "$CRIU" --config "$BATS_TEST_TMPDIR/lazy.conf" restore -d \
		-D "$ZDTM_IMG" -o restore.log -v4 --pidfile restored.pid -L "$PL_DIR" </dev/null >/dev/null 2>&1 || PL_RC=$?
	[ "$PL_RC" -ne 0 ]
	grep -E "Error \(plugin/plugin.c:[0-9]+\): lazy_uffd: criu restore --lazy-pages cannot work: /dev/userfaultfd does not exist" "$PL_LOG" ||
		{ pl_diag; false; }
	[ "$(pl_count 'Forking task|uffd: Sending PID' "$PL_LOG")" = 0 ]
	pl_stop_daemon
	pl_no_survivor
}

@test "device: an eager restore is not stopped by a missing device" {
	pl_start anon --size 1M
	zdtm_dump
	run pl_gone "$NO_UFFD" --errno EPERM -- "$CRIU" restore -d -D "$ZDTM_IMG" -o restore.log -v4 \
		--pidfile restored.pid -L "$PL_DIR"
	[ "$status" -eq 0 ] || { pl_diag; false; }
	ZDTM_RPID=$(cat "$ZDTM_IMG/restored.pid")
	grep -q 'lazy_uffd: /dev/userfaultfd does not exist.*(not a lazy restore' "$PL_LOG"
	zdtm_stop
	zdtm_expect_pass
}

@test "device: EVENT_FORK refused (criu without CAP_SYS_PTRACE): the restore is refused in init" {
	pl_start anon --size 1M
	zdtm_dump
	pl_daemon ours
	pl_restore setpriv --bounding-set -sys_ptrace "$NO_UFFD" --errno EPERM -- -L "$PL_DIR"
	[ "$PL_RC" -ne 0 ]
	grep -E 'lazy_uffd: criu restore --lazy-pages cannot work: /dev/userfaultfd: the kernel refuses EVENT_FORK \(it needs CAP_SYS_PTRACE\), and without it a process that forks after the restore would lose the lazy pages.*LAZY_UFFD_ALLOW_NO_FORK_EVENT=1' "$PL_LOG" ||
		{ pl_diag; false; }
	[ "$(pl_count 'Forking task|uffd: Sending PID' "$PL_LOG")" = 0 ]
	pl_stop_daemon
	pl_no_survivor
}

@test "device: EVENT_FORK refused but LAZY_UFFD_ALLOW_NO_FORK_EVENT=1: restored with the other three events" {
	# The program itself runs without CAP_SYS_PTRACE, so criu can restore its caps.
	local bin=$BATS_TEST_TMPDIR/build
	PL_NAME=lu$((RANDOM % 10000))-noptrace
	mkdir -p "$bin/zdtm"
	ln -s "$LU_BUILD/zdtm/anon" "$bin/zdtm/$PL_NAME"
	ZDTM_PROG=$bin/zdtm/$PL_NAME
	setsid setpriv --bounding-set -sys_ptrace unshare -p -f setsid "$ZDTM_PROG" --pidfile "$ZDTM_PIDFILE" \
		--outfile "$ZDTM_OUT" --size 4M </dev/null >/dev/null 2>&1 &
	ZDTM_LAUNCHER=$!
	zdtm_wait_ready "$PL_NAME" test -s "$ZDTM_PIDFILE"
	ZDTM_PID=$(cat "$ZDTM_PIDFILE")
	zdtm_dump
	pl_daemon ours
	pl_restore env LAZY_UFFD_ALLOW_NO_FORK_EVENT=1 setpriv --bounding-set -sys_ptrace "$NO_UFFD" --errno EPERM -- \
		-L "$PL_DIR"
	pl_finish
	grep -q 'Warn .*lazy_uffd: uffd [0-9]*: the kernel refused EVENT_FORK (no CAP_SYS_PTRACE); going on without it' "$PL_LOG"
	grep -qE 'lazy_uffd: uffd [0-9]+ made through /dev/userfaultfd .*enabled 0x4c: EVENT_REMAP EVENT_REMOVE EVENT_UNMAP$' "$PL_LOG"
	# The init line lists the events criu's uffds get: EVENT_FORK, though advertised, is not one.
	grep -qE "lazy_uffd: userfaultfd\(2\) fails with EPERM: CRIU's uffds will be made through /dev/userfaultfd, opened now and .*; of the events a lazy restore needs they get EVENT_REMAP EVENT_REMOVE EVENT_UNMAP \(no EVENT_FORK\)$" "$PL_LOG"
}
