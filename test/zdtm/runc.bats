#!/usr/bin/env bats
# Lazy restores of a real container: Debian's runc (`make deps` installs it), told to use
# our criu (`runc --criu`), on a bundle made here whose only process is a static zdtm
# program (anon, 64M, checked byte for byte at SIGTERM; its verdict goes to /out, a bind
# mount). runc drives criu through RPC (criu swrk) and moves `criu restore` into the new
# container's cgroups, whose default device rules deny /dev/userfaultfd (c 10:257).
#
# The container shares the host's network namespace: criu locks a container's own one
# with iptables, which is not what these tests are about.
# README's "Containers" section runs the same commands.

load ../lib
load zdtm

setup() {
	lu_require_root || return
	lu_require_criu || return
	command -v runc >/dev/null || { lu_skip "runc is not installed: run 'make deps'"; return; }
	command -v python3 >/dev/null || { lu_skip "python3 writes the bundle's config.json here"; return; }
	[ -x "$LAZY_UFFD" ] || { lu_skip "$LAZY_UFFD is not built"; return; }
	PROG=$LU_BUILD/zdtm/anon-static
	[ -x "$PROG" ] || { lu_skip "$PROG is not built"; return; }
	RB=$BATS_TEST_TMPDIR/rb
	BUNDLE=$RB/bundle
	OUT=$BUNDLE/rootfs/out
	ID=lu-$$-$BATS_TEST_NUMBER
	ID2=$ID-b
	DPID=
	DLOG=
	PORT=$((27200 + (RANDOM % 400)))
	mkdir -p "$OUT" "$RB/img" "$RB/dump-work" "$RB/work"
	cp "$PROG" "$BUNDLE/rootfs/anon"
	(cd "$BUNDLE" && runc spec) || return 1
	python3 - "$BUNDLE/config.json" "$OUT" <<-'EOF'
		import json, sys
		path, out = sys.argv[1], sys.argv[2]
		c = json.load(open(path))
		c["process"]["terminal"] = False
		c["process"]["args"] = ["/anon", "--pidfile", "/out/pid", "--outfile", "/out/out", "--size", "64M"]
		c["root"]["readonly"] = False
		c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "network"]
		c["mounts"].append({"destination": "/out", "type": "bind", "source": out, "options": ["rbind", "rw"]})
		json.dump(c, open(path, "w"), indent=1)
	EOF
}

teardown() {
	local id
	for id in "${ID:-}" "${ID2:-}"; do
		[ -n "$id" ] || continue
		runc kill "$id" KILL 2>/dev/null || true
		runc delete -f "$id" 2>/dev/null || true
	done
	if [ -n "${DPID:-}" ]; then
		kill -KILL "$DPID" 2>/dev/null || true
		wait "$DPID" 2>/dev/null || true
	fi
}

diag() {
	local f
	for f in "$RB"/dump-work/dump.log "$RB"/work/restore.log "$DLOG" "$RB"/*.out; do
		[ -s "$f" ] || continue
		echo "--- $f"
		grep -E 'Error|Warn|lazy_uffd' "$f" | grep -v RLIMIT_NOFILE | tail -n 12
	done
}

# within SECONDS CMD...: CMD succeeds within SECONDS (polled every 50 ms).
within() {
	local i n=$(($1 * 20))
	shift
	for ((i = 0; i < n; i++)); do
		"$@" && return 0
		sleep 0.05
	done
	return 1
}

# rc_run: the container runs and its program is ready.
rc_run() {
	(cd "$BUNDLE" && runc run -d "$ID" </dev/null >"$RB/run.out" 2>&1) || { cat "$RB/run.out"; return 1; }
	within 5 test -s "$OUT/pid" || { echo "the container's program never got ready"; return 1; }
}

# rc_daemon ours|criu [ARGS...]: the lazy-pages daemon on IMG, work dir $RB/work.
rc_daemon() {
	local which=$1 img=$2
	shift 2
	if [ "$which" = ours ]; then
		"$LAZY_UFFD" daemon -D "$img" -W "$RB/work" -o lazy.log -v4 "$@" </dev/null >"$RB/daemon.out" 2>&1 &
	else
		"$CRIU" lazy-pages -D "$img" -W "$RB/work" -o lazy.log -v4 "$@" </dev/null >"$RB/daemon.out" 2>&1 &
	fi
	DPID=$!
	DLOG=$RB/work/lazy.log
	within 5 test -S "$RB/work/lazy-pages.socket" || { echo "the $which daemon never listened"; return 1; }
}

# rc_restore CRIU ID IMG: runc restore --lazy-pages, detached.
rc_restore() {
	(cd "$BUNDLE" && timeout 120 runc --criu "$1" restore --image-path "$3" --work-path "$RB/work" \
		--lazy-pages -d "$2" </dev/null >"$RB/restore.out" 2>&1)
}

# rc_finish ID: the restored program checks every byte and says PASS; the daemon exits 0.
rc_finish() {
	local rc=0
	rm -f "$OUT/out"
	runc kill "$1" TERM || { echo "runc kill $1 failed"; diag; return 1; }
	within 20 test -s "$OUT/out" || true
	[ "$(cat "$OUT/out" 2>/dev/null)" = PASS ] || { echo "verdict: $(cat "$OUT/out" 2>/dev/null)"; diag; return 1; }
	within 20 eval '! kill -0 "$DPID" 2>/dev/null' || true
	wait "$DPID" || rc=$?
	DPID=
	[ "$rc" = 0 ] || { echo "the daemon exited $rc"; diag; return 1; }
}

# criu_blocked: criu with userfaultfd(2) refused (EPERM, as Docker's seccomp profile) and
# the plugin in its plugin dir (CRIU_LIBS_DIR: runc adds no -L).
criu_blocked() {
	mkdir -p "$RB/plugins"
	cp "$LU_BUILD/lazy_uffd.so" "$RB/plugins/"
	cat >"$RB/criu-blocked" <<-EOF
		#!/bin/sh
		CRIU_LIBS_DIR=$RB/plugins exec $LU_BUILD/test/tools/no-uffd --errno EPERM -- $CRIU "\$@"
	EOF
	chmod +x "$RB/criu-blocked"
	echo "$RB/criu-blocked"
}

checkpoint() {
	(cd "$BUNDLE" && timeout 120 runc --criu "$CRIU" checkpoint --image-path "$RB/img" \
		--work-path "$RB/dump-work" "$ID" >"$RB/ckpt.out" 2>&1) || { cat "$RB/ckpt.out"; diag; return 1; }
}

local_lazy() {
	local daemon=$1 criu=$2
	rc_run
	checkpoint
	rc_daemon "$daemon" "$RB/img"
	rc_restore "$criu" "$ID" "$RB/img" || { cat "$RB/restore.out"; diag; return 1; }
	rc_finish "$ID"
}

@test "runc: local lazy restore with our daemon" {
	local_lazy ours "$CRIU"
	grep -q "all tasks complete" "$DLOG"
}

@test "runc: local lazy restore with criu lazy-pages" {
	local_lazy criu "$CRIU"
}

# migrate DAEMON: `runc checkpoint --lazy-pages --page-server` keeps the container frozen
# and serves its memory; the destination (another container of the same bundle) restores
# from a copy of the images with pages from there. The source ends by itself.
migrate() {
	local daemon=$1 rc=0 args=(--page-server --address 127.0.0.1 --port "$PORT")
	rc_run
	(cd "$BUNDLE" && exec timeout 120 runc --criu "$CRIU" checkpoint --image-path "$RB/img" \
		--work-path "$RB/dump-work" --lazy-pages --page-server "127.0.0.1:$PORT" "$ID" \
		>"$RB/ckpt.out" 2>&1) &
	local src=$!
	# The images are all written before criu's page server listens.
	within 20 eval '[ -n "$(ss -Hltn "sport = :$PORT")" ]' || { echo "the lazy checkpoint never listened"; diag; return 1; }
	cp -a "$RB/img" "$RB/dst"
	rc_daemon "$daemon" "$RB/dst" "${args[@]}"
	rc_restore "$CRIU" "$ID2" "$RB/dst" || { cat "$RB/restore.out"; diag; return 1; }
	rc_finish "$ID2"
	wait "$src" || rc=$?
	[ "$rc" = 0 ] || { echo "runc checkpoint --lazy-pages exited $rc"; cat "$RB/ckpt.out"; diag; return 1; }
	# The source container is gone: it lives on at the destination only.
	! runc state "$ID" >/dev/null 2>&1
}

@test "runc: lazy migration (checkpoint --lazy-pages --page-server) with our daemon" {
	migrate ours
}

@test "runc: lazy migration (checkpoint --lazy-pages --page-server) with criu lazy-pages" {
	migrate criu
}

@test "runc: userfaultfd(2) blocked, default device rules: our daemon hands criu the device; byte-exact" {
	local criu
	criu=$(criu_blocked)
	local_lazy ours "$criu"
	# The container's devices cgroup kept criu from the node; the daemon opened it.
	grep -q "lazy_uffd: userfaultfd(2) fails with EPERM: /dev/userfaultfd cannot be opened here (EPERM); the lazy-pages daemon handed us its fd" "$RB/work/restore.log"
	grep -q "handed /dev/userfaultfd to pid" "$DLOG"
	[ "$(grep -c 'made by the userfaultfd syscall' "$RB/work/restore.log")" = 0 ]
}

@test "runc: userfaultfd(2) blocked, with criu lazy-pages: the restore fails naming the devices cgroup" {
	local criu rc=0
	criu=$(criu_blocked)
	rc_run
	checkpoint
	rc_daemon criu "$RB/img"
	rc_restore "$criu" "$ID" "$RB/img" || rc=$?
	[ "$rc" -ne 0 ] || { echo "runc restore succeeded"; diag; return 1; }
	grep -E "lazy_uffd: criu restore --lazy-pages cannot work: /dev/userfaultfd cannot be opened from here: the devices cgroup [^ ]+ of this process does not allow char 10:257" "$RB/work/restore.log" ||
		{ diag; return 1; }
	grep -q '"major":10,"minor":257' "$RB/work/restore.log"
}
