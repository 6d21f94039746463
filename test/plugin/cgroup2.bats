#!/usr/bin/env bats
# criu restore confined by a cgroup v2 device BPF program that refuses /dev/userfaultfd
# (c 10:257), as runc and crun confine a container on cgroup v2, with userfaultfd(2)
# refused too (test/tools/no-uffd). test/tools/cg2-deny builds the cgroup: a hand-written
# BPF_PROG_TYPE_CGROUP_DEVICE program attached to it, enforced beside cgroup v1's devices
# controller on a hybrid host. The cgroup v1 twin of this file is cgroup.bats.
#
# The denial is checked, not presumed: the plugin and `lazy-uffd doctor` ask the kernel
# (BPF_PROG_QUERY) whether a device program is attached to the process's cgroup or an
# ancestor, and name where; the program's rules cannot be read back.

load ../lib
load ../zdtm/zdtm
load lu_plugin

CG2_DENY=$LU_BUILD/test/tools/cg2-deny

setup() {
	CG2_MNT=
	CG2_OWN_MNT=
	CG=
	pl_setup || return
	[ -x "$CG2_DENY" ] || { lu_skip "$CG2_DENY is not built"; return; }
	CG2_MNT=$(awk '$0 ~ / - cgroup2 / { print $5; exit }' /proc/self/mountinfo)
	if [ -z "$CG2_MNT" ]; then
		CG2_MNT=$BATS_TEST_TMPDIR/cgroup2
		mkdir -p "$CG2_MNT"
		mount -t cgroup2 none "$CG2_MNT" || { lu_skip "cannot mount cgroup2"; return; }
		CG2_OWN_MNT=$CG2_MNT
	fi
	CG=$CG2_MNT/lazy-uffd-test-$$-$BATS_TEST_NUMBER
	# The cgroup as /proc/self/cgroup names it (the mount's root is the hierarchy's here).
	CG_NAME=${CG#"$CG2_MNT"}
	"$CG2_DENY" "$CG" || return
	# No "--" in it: pl_restore takes the first one as the end of its prefix.
	IN_CG=("$CG2_DENY" "$CG")
}

# rm_cg DIR: remove a cgroup once its last process is gone (the teardown above killed them).
rm_cg() {
	local i
	[ -d "$1" ] || return 0
	for ((i = 0; i < 100; i++)); do
		rmdir "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "cannot remove $1: $(tr '\n' ' ' <"$1/cgroup.procs")"
	return 1
}

teardown() {
	local rc=0
	pl_teardown
	if [ -n "${CG:-}" ]; then
		rm_cg "$CG/inner" || rc=1
		rm_cg "$CG" || rc=1
	fi
	if [ -n "${CG2_OWN_MNT:-}" ]; then
		umount "$CG2_OWN_MNT" || rc=1
	fi
	return $rc
}

line() {
	echo "$output" | sed -n "s|^$1  *||p" | head -n 1
}

@test "cgroup v2: cg2-deny's program refuses 10:257 inside the cgroup, nothing else, nothing outside" {
	run "${IN_CG[@]}" sh -c 'cat /proc/self/cgroup; exec 3<>/dev/userfaultfd'
	echo "$output"
	[ "$status" -ne 0 ]
	[[ "$output" == *"0::$CG_NAME"* ]]
	[[ "$output" == *"Operation not permitted"* ]]
	"${IN_CG[@]}" sh -c 'exec 3<>/dev/null'
	sh -c 'exec 3<>/dev/userfaultfd'
}

@test "cgroup v2: doctor names the cgroup and its device BPF program, not file permissions" {
	run "${IN_CG[@]}" "$NO_UFFD" --errno EPERM -- "$LAZY_UFFD" doctor
	echo "$output"
	[ "$status" -eq 1 ]
	[ "$(line 'device access')" = "open failed for uid 0: EPERM" ]
	[[ "$(line 'device cgroup')" == "DENIES: the cgroup v2 cgroup $CG_NAME of this process has a device BPF program (attached at $CG_NAME) and the open was refused with EPERM"* ]]
	[[ "$output" == *"verdict: no:"* ]]
	[[ "$output" == *"next step: /dev/userfaultfd cannot be opened from here: the cgroup v2 cgroup $CG_NAME of this process has a device BPF program"* ]]
	[[ "$output" == *'{"allow":true,"type":"c","major":10,"minor":257,"access":"rw"}'* ]]
	[[ "$output" == *"--device /dev/userfaultfd"* ]]
	[[ "$output" == *"lazy-uffd-device.socket"* ]]
	[[ "$output" != *"chgrp"* ]]
	[[ "$output" != *"may have"* ]]
}

@test "cgroup v2: doctor finds a program attached to an ancestor cgroup" {
	mkdir "$CG/inner"
	run sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG/inner" \
		"$NO_UFFD" --errno EPERM -- "$LAZY_UFFD" doctor
	echo "$output"
	[ "$status" -eq 1 ]
	[[ "$(line 'device cgroup')" == "DENIES: the cgroup v2 cgroup $CG_NAME/inner of this process has a device BPF program (attached at $CG_NAME) and"* ]]
}

@test "cgroup v2: outside the cgroup doctor checks and finds no program; the verdict is ok" {
	run "$NO_UFFD" --errno EPERM -- "$LAZY_UFFD" doctor
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$(line 'device cgroup')" == *"cgroup v2 cgroup "*": no device BPF program attached to it or above it" ]]
}

@test "cgroup v2: our daemon hands criu the device; the lazy restore is byte-exact" {
	pl_handed_over_restore "${IN_CG[@]}"
}

@test "cgroup v2: with CRIU's daemon nothing hands the device over: the restore fails naming the cgroup's program" {
	pl_start anon --size 4M
	zdtm_dump
	pl_daemon criu
	pl_restore "${IN_CG[@]}" "$NO_UFFD" --errno EPERM -- -L "$PL_DIR"
	[ "$PL_RC" -ne 0 ] || { pl_diag; false; }
	grep -q "criu restore --lazy-pages cannot work: /dev/userfaultfd cannot be opened from here: the cgroup v2 cgroup $CG_NAME of this process has a device BPF program (attached at $CG_NAME) and the open was refused with EPERM" "$PL_LOG" ||
		{ pl_diag; false; }
	grep -q '{"allow":true,"type":"c","major":10,"minor":257,"access":"rw"}' "$PL_LOG"
	! grep -q "chgrp" "$PL_LOG"
	pl_stop_daemon
	pl_no_survivor
}
