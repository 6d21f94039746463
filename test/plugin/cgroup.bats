#!/usr/bin/env bats
# criu restore confined by a devices cgroup that denies /dev/userfaultfd (c 10:257), as a
# container runtime confines it (runc moves criu into the new container's cgroups before
# the restore), with userfaultfd(2) refused too (test/tools/no-uffd): the node cannot
# help criu, whatever its file mode. Our daemon, outside that cgroup, hands criu an fd of
# the device on lazy-uffd-device.socket; with CRIU's daemon nothing can, and the plugin
# fails the restore naming the cgroup and the fixes. `lazy-uffd doctor` run there names
# the cgroup, not file permissions.

load ../lib
load ../zdtm/zdtm
load lu_plugin

setup() {
	CG=
	pl_setup || return
	[ -w /sys/fs/cgroup/devices/devices.deny ] ||
		{ lu_skip "no writable cgroup v1 devices controller at /sys/fs/cgroup/devices"; return; }
	CG=/sys/fs/cgroup/devices/lazy-uffd-test-$$-$BATS_TEST_NUMBER
	mkdir "$CG"
	echo 'c 10:257 rwm' >"$CG/devices.deny"
	# A prefix that puts the command it runs into the cgroup.
	IN_CG=(sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG")
}

teardown() {
	local i
	pl_teardown
	[ -n "${CG:-}" ] || return 0
	# The restored tree was created in it; the teardown above killed it.
	for ((i = 0; i < 100; i++)); do
		rmdir "$CG" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "cannot remove $CG: $(cat "$CG/cgroup.procs" | tr '\n' ' ')"
}

@test "devices cgroup: doctor names the cgroup that denies 10:257, not file permissions" {
	run "${IN_CG[@]}" "$NO_UFFD" --errno EPERM -- "$LAZY_UFFD" doctor
	echo "$output"
	[[ "$output" == *"verdict: no:"* ]]
	[[ "$output" == *"the devices cgroup ${CG#/sys/fs/cgroup/devices} of this process does not allow char 10:257"* ]]
	[[ "$output" == *'{"allow":true,"type":"c","major":10,"minor":257,"access":"rw"}'* ]]
	[[ "$output" != *"chgrp"* ]]
}

@test "devices cgroup: our daemon hands criu the device; the lazy restore is byte-exact" {
	pl_handed_over_restore "${IN_CG[@]}"
}

@test "devices cgroup: with CRIU's daemon nothing hands the device over: the restore fails naming the cgroup" {
	pl_start anon --size 4M
	zdtm_dump
	pl_daemon criu
	pl_restore "${IN_CG[@]}" "$NO_UFFD" --errno EPERM -- -L "$PL_DIR"
	[ "$PL_RC" -ne 0 ] || { pl_diag; false; }
	grep -q "criu restore --lazy-pages cannot work: /dev/userfaultfd cannot be opened from here: the devices cgroup ${CG#/sys/fs/cgroup/devices} of this process does not allow char 10:257" "$PL_LOG" ||
		{ pl_diag; false; }
	! grep -q "chgrp" "$PL_LOG"
	pl_stop_daemon
	pl_no_survivor
}
