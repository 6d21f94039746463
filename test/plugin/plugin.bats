#!/usr/bin/env bats
# The plugin loads into the criu in use (4.1 and 4.2) for dump and restore, from -L and
# from CRIU_LIBS_DIR, and leaves a plain dump/restore working.

load ../lib

setup() {
	lu_require_root || return
	lu_require_criu || return
	PLUGDIR=$BATS_TEST_TMPDIR/plugins
	mkdir -p "$PLUGDIR" "$BATS_TEST_TMPDIR/img"
	cp "$LU_BUILD/lazy_uffd.so" "$PLUGDIR/"
	# A sleeping session leader in its own pid namespace: the smallest dumpable tree.
	setsid unshare -p -f setsid sleep 1000 </dev/null >/dev/null 2>&1 &
	LAUNCHER=$!
	TARGET=
	for _ in $(seq 100); do
		TARGET=$(lu_ns_init_of "$LAUNCHER") && break
		sleep 0.05
	done
	[ -n "$TARGET" ]
}

teardown() {
	[ -n "${RESTORED:-}" ] && kill -KILL "$RESTORED" 2>/dev/null
	[ -n "${TARGET:-}" ] && kill -KILL "$TARGET" 2>/dev/null
	[ -n "${LAUNCHER:-}" ] && kill -KILL "$LAUNCHER" 2>/dev/null
	true
}

dump_restore() {
	cd "$BATS_TEST_TMPDIR"
	run "$CRIU" dump -t "$TARGET" -D img -o dump.log -v4 "$@"
	[ "$status" -eq 0 ] || { tail -20 img/dump.log; false; }
	grep -q 'lazy_uffd: loaded for dump' img/dump.log
	run "$CRIU" restore -d -D img -o restore.log -v4 --pidfile restored.pid "$@"
	[ "$status" -eq 0 ] || { tail -20 img/restore.log; false; }
	RESTORED=$(cat img/restored.pid)
	grep -q 'lazy_uffd: loaded for restore' img/restore.log
	[ "$(cat /proc/"$RESTORED"/comm)" = sleep ]
}

@test "plugin: loads with -L for dump and restore" {
	dump_restore -L "$PLUGDIR"
}

@test "plugin: loads from CRIU_LIBS_DIR" {
	export CRIU_LIBS_DIR=$PLUGDIR
	dump_restore
}

@test "plugin: declares CRIU 4.1's hook table (12 hooks), which 4.1 and 4.2 both accept" {
	run "$CRIU" dump -t "$TARGET" -D "$BATS_TEST_TMPDIR/img" -o dump.log -v4 -L "$PLUGDIR"
	[ "$status" -eq 0 ]
	run grep -c 'Corrupted plugin' "$BATS_TEST_TMPDIR/img/dump.log"
	[ "$output" = 0 ]
	grep -q 'lazy_uffd' "$BATS_TEST_TMPDIR/img/dump.log"
}
