#!/usr/bin/env bats
# lazy-uffd doctor's verdicts on this machine: as it is (the syscall works), under
# test/tools/no-uffd (EPERM, ENOSYS: the device path with the plugin), with the device
# hidden or unusable, as a user without access, and without criu. Exit 0 when a lazy
# restore can work, 1 when not.

load ../lib
load lu_plugin

setup() {
	lu_require_root || return
	lu_require_criu || return
	[ -x "$LAZY_UFFD" ] || { lu_skip "$LAZY_UFFD is not built"; return; }
	[ -x "$NO_UFFD" ] || { lu_skip "$NO_UFFD is not built"; return; }
	[ -c /dev/userfaultfd ] || { lu_skip "no /dev/userfaultfd here (Linux >= 6.1 needed)"; return; }
	DOCTOR=("$LAZY_UFFD" doctor --criu "$CRIU" --plugin "$PL_SO")
	SAVED_UNPRIV=
}

teardown() {
	[ -z "${SAVED_UNPRIV:-}" ] || echo "$SAVED_UNPRIV" >/proc/sys/vm/unprivileged_userfaultfd
}

# line KEY: the value of one "KEY   value" line of the report.
line() {
	echo "$output" | sed -n "s|^$1  *||p" | head -n 1
}

@test "doctor: unrestricted: ok through the syscall; facts about this machine" {
	run "${DOCTOR[@]}"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(line 'userfaultfd(2)')" = ok ]
	[[ "$(line kernel)" == "Linux $(uname -r) ($(uname -m))" ]]
	[ "$(line vm.unprivileged_userfaultfd)" = "$(cat /proc/sys/vm/unprivileged_userfaultfd)" ]
	[[ "$(line /dev/userfaultfd)" == "char 10:257, owner "*", mode "*"$(stat -c %a /dev/userfaultfd | xargs printf '%04d') c"* ]]
	[[ "$(line 'device access')" == "usable by uid 0: open and USERFAULTFD_IOC_NEW work" ]]
	[[ "$(line 'lazy restore events via syscall')" == "granted: EVENT_FORK EVENT_REMAP EVENT_REMOVE EVENT_UNMAP" ]]
	[[ "$(line 'lazy restore events via device')" == "granted: EVENT_FORK EVENT_REMAP EVENT_REMOVE EVENT_UNMAP" ]]
	[[ "$(line 'ioctls via device')" == *"for an anonymous range: WAKE COPY ZEROPAGE"* ]]
	[[ "$(line criu)" == "$CRIU (from --criu), version $CRIU_VERSION" ]]
	[[ "$(line plugin)" == "$PL_SO loads, and finds criu's syscall() and ioctl() GOT slots" ]]
	[ "$(line 'criu check uffd-noncoop')" = "passes alone, passes with LD_PRELOAD=lazy_uffd.so" ]
	[[ "$output" == *"verdict: ok: lazy restore works with the userfaultfd syscall"* ]]
}

# restricted ERRNO: the device path with the plugin is the verdict.
restricted() {
	run "$NO_UFFD" --errno "$1" -- "${DOCTOR[@]}"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$(line 'userfaultfd(2)')" == "$1: refused by a seccomp filter (Seccomp: 2 in /proc/self/status; with UFFD_USER_MODE_ONLY too"* ]]
	[[ "$(line 'device cgroup')" != DENIES* ]]
	[ -z "$(line 'features via syscall')" ]
	[[ "$(line 'features via device')" == *"EVENT_FORK EVENT_REMAP EVENT_REMOVE"*"EVENT_UNMAP"* ]]
	[ "$(line 'criu check uffd-noncoop')" = "fails alone, passes with LD_PRELOAD=lazy_uffd.so" ]
	[[ "$output" == *"verdict: ok: lazy restore works through /dev/userfaultfd with lazy_uffd.so (userfaultfd(2): $1)"* ]]
	[[ "$output" == *"next step: criu restore --lazy-pages -L $(dirname "$PL_SO") -D DIR"* ]]
	[[ "$output" == *"LD_PRELOAD=$PL_SO criu ..."* ]]
}

@test "doctor: userfaultfd(2) refused with EPERM: ok through /dev/userfaultfd with the plugin" {
	restricted EPERM
}

@test "doctor: userfaultfd(2) refused with ENOSYS: ok through /dev/userfaultfd with the plugin" {
	restricted ENOSYS
}

@test "doctor: restricted and no device node: no, and how to add the node" {
	run "$PL_HIDE" gone "$NO_UFFD" --errno EPERM -- "${DOCTOR[@]}"
	echo "$output"
	[ "$status" -eq 1 ]
	[ "$(line /dev/userfaultfd)" = "ENOENT: No such file or directory" ]
	[ "$(line 'device access')" = "open failed for uid 0: ENOENT" ]
	[[ "$(line 'device cgroup')" != DENIES* ]]
	[[ "$output" == *"verdict: no: userfaultfd(2) is refused (EPERM) and /dev/userfaultfd cannot be used"* ]]
	[[ "$output" == *"next step: /dev/userfaultfd does not exist: "*"mknod -m 0660 /dev/userfaultfd c 10 257"* ]]
}

@test "doctor: restricted and /dev/null bound over the device: no, it is not the userfaultfd device" {
	run "$PL_HIDE" null "$NO_UFFD" --errno ENOSYS -- "${DOCTOR[@]}"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$(line /dev/userfaultfd)" == "char 1:3, NOT the userfaultfd device 10:257 (hidden or replaced)"* ]]
	[ "$(line 'device access')" = "USERFAULTFD_IOC_NEW failed for uid 0: ENOTTY" ]
	[[ "$output" == *"next step: /dev/userfaultfd is char device 1:3, not the userfaultfd device"* ]]
}

@test "doctor: restricted and the device on a nodev mount: no, permission denied even for root" {
	run "$PL_HIDE" nodev "$NO_UFFD" --errno EPERM -- "${DOCTOR[@]}"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$(line /dev/userfaultfd)" == *"mode 0000 c---------, on a nodev mount" ]]
	[ "$(line 'device access')" = "open failed for uid 0: EACCES" ]
	[[ "$output" == *"next step: permission denied opening /dev/userfaultfd"*"the mount holding it is nodev"* ]]
}

@test "doctor: device hidden but the syscall allowed: still ok, through the syscall" {
	run "$PL_HIDE" gone "${DOCTOR[@]}"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"verdict: ok: lazy restore works with the userfaultfd syscall"* ]]
}

@test "doctor: a user without access to the device: no, shows owner, group and mode and how to grant it" {
	local mode
	mode=$(stat -c %a /dev/userfaultfd)
	[ $((8#$mode & 6)) = 0 ] || lu_skip "/dev/userfaultfd is usable by everyone here (mode $mode)"
	run setpriv --reuid nobody --regid nogroup --clear-groups "${DOCTOR[@]}"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$(line 'userfaultfd(2)')" == "EPERM: refused by vm.unprivileged_userfaultfd=0 without CAP_SYS_PTRACE; with UFFD_USER_MODE_ONLY it is allowed, so no seccomp filter refuses it" ]] ||
		[ "$(cat /proc/sys/vm/unprivileged_userfaultfd)" = 1 ]
	[[ "$(line 'device cgroup')" != DENIES* ]]
	[[ "$(line 'device access')" == "open failed for uid 65534: EACCES" ]]
	[[ "$output" == *"next step: permission denied opening /dev/userfaultfd (owner "*", group "*", mode "*"; we are uid 65534 gid "*"fix: grant access with a group and mode 0660"*"or an ACL ('setfacl -m u:USER:rw /dev/userfaultfd')"* ]]
}

@test "doctor: no criu: no, and where to get one" {
	run "$LAZY_UFFD" doctor --criu /nonexistent/criu --plugin "$PL_SO"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$(line criu)" == "not found"* ]]
	[[ "$output" == *"verdict: no: no criu found"* ]]
}

@test "doctor: restricted and no plugin: no, and how to get it" {
	run "$NO_UFFD" --errno EPERM -- "$LAZY_UFFD" doctor --criu "$CRIU" --plugin /nonexistent/lazy_uffd.so
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$output" == *"lazy_uffd.so, which makes criu use it, is not found"* ]]
}

@test "doctor: restricted with LAZY_UFFD_MODE=syscall: no, the setting turns the plugin off" {
	run env LAZY_UFFD_MODE=syscall "$NO_UFFD" --errno EPERM -- "${DOCTOR[@]}"
	[ "$status" -eq 1 ]
	[[ "$output" == *"next step: unset LAZY_UFFD_MODE"* ]]
}

@test "doctor: usage errors exit 2" {
	run "$LAZY_UFFD" doctor extra
	[ "$status" -eq 2 ]
	run "$LAZY_UFFD" doctor --bogus
	[ "$status" -eq 2 ]
	run "$LAZY_UFFD" doctor --help
	[ "$status" -eq 0 ]
	[[ "$output" == "usage: lazy-uffd doctor"* ]]
}

@test "doctor: restricted and no CAP_SYS_PTRACE: no (EVENT_FORK refused), unless LAZY_UFFD_ALLOW_NO_FORK_EVENT=1" {
	run setpriv --bounding-set -sys_ptrace "$NO_UFFD" --errno EPERM -- "${DOCTOR[@]}"
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$(line 'lazy restore events via device')" == "EPERM: EVENT_FORK needs CAP_SYS_PTRACE"* ]]
	[[ "$output" == *"verdict: no: /dev/userfaultfd works, but the kernel refuses EVENT_FORK without CAP_SYS_PTRACE"* ]]
	run env LAZY_UFFD_ALLOW_NO_FORK_EVENT=1 setpriv --bounding-set -sys_ptrace "$NO_UFFD" --errno EPERM -- "${DOCTOR[@]}"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(line LAZY_UFFD_ALLOW_NO_FORK_EVENT)" = 1 ]
	[[ "$output" == *"verdict: ok: lazy restore works through /dev/userfaultfd"* ]]
	[[ "$output" == *"warning: without EVENT_FORK (LAZY_UFFD_ALLOW_NO_FORK_EVENT=1): a process that forks after the restore loses"* ]]
}

@test "doctor: root in a user namespace with vm.unprivileged_userfaultfd=0: the sysctl and the namespace, not seccomp" {
	SAVED_UNPRIV=$(cat /proc/sys/vm/unprivileged_userfaultfd)
	echo 0 >/proc/sys/vm/unprivileged_userfaultfd
	run unshare --user --map-root-user "$LAZY_UFFD" doctor --criu /nonexistent/criu
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$(line 'userfaultfd(2)')" == "EPERM: refused by vm.unprivileged_userfaultfd=0: this process is in a user namespace (uid_map 0 0 1), and only CAP_SYS_PTRACE in the initial one counts; with UFFD_USER_MODE_ONLY it is allowed, so no seccomp filter refuses it" ]]
	[[ "$(line 'device cgroup')" != DENIES* ]]
	# Outside the namespace root's syscall works: the namespace is the cause.
	run "$LAZY_UFFD" doctor --criu /nonexistent/criu
	[ "$(line 'userfaultfd(2)')" = ok ]
}
