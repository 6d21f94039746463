#!/usr/bin/env bats
# The build's promises to users: install layout, print-criu, the programs' help texts.

load ../lib

@test "build: make install puts the program in bin/ and the plugin in lib/criu/" {
	dest=$BATS_TEST_TMPDIR/root
	run make -s -C "$LU_TOP" install O="$LU_BUILD" PREFIX=/usr DESTDIR="$dest"
	[ "$status" -eq 0 ]
	[ -x "$dest/usr/bin/lazy-uffd" ]
	[ -f "$dest/usr/lib/criu/lazy_uffd.so" ]
	cmp "$dest/usr/bin/lazy-uffd" "$LAZY_UFFD"
	cmp "$dest/usr/lib/criu/lazy_uffd.so" "$LU_BUILD/lazy_uffd.so"
	[ -x "$dest/usr/bin/criu-lazy-uffd" ]
	cmp "$dest/usr/share/man/man1/lazy-uffd.1" "$LU_TOP/man/lazy-uffd.1"
}

@test "build: make uninstall removes exactly what make install put there" {
	dest=$BATS_TEST_TMPDIR/root
	mkdir -p "$dest/usr/bin" "$dest/usr/lib/criu" "$dest/usr/share/man/man1"
	touch "$dest/usr/bin/other" "$dest/usr/lib/criu/other.so"
	(cd "$dest" && find . | sort) >"$BATS_TEST_TMPDIR/before"
	run make -s -C "$LU_TOP" install O="$LU_BUILD" PREFIX=/usr DESTDIR="$dest"
	[ "$status" -eq 0 ]
	run make -s -C "$LU_TOP" uninstall O="$LU_BUILD" PREFIX=/usr DESTDIR="$dest"
	echo "$output"
	[ "$status" -eq 0 ]
	(cd "$dest" && find . | sort) >"$BATS_TEST_TMPDIR/after"
	diff "$BATS_TEST_TMPDIR/before" "$BATS_TEST_TMPDIR/after"
	# Nothing installed: nothing to do, and no error.
	run make -s -C "$LU_TOP" uninstall O="$LU_BUILD" PREFIX=/usr DESTDIR="$dest"
	[ "$status" -eq 0 ]
}

@test "build: the man page renders without warnings and names every option of every --help" {
	command -v man >/dev/null || { lu_skip "man is not installed"; return; }
	run env LC_ALL=C MANWIDTH=200 man --warnings -l "$LU_TOP/man/lazy-uffd.1"
	[ "$status" -eq 0 ]
	[[ "$output" == *"lazy-uffd - lazy-pages daemon"* ]]
	page=$output
	run groff -man -Tascii -ww -z "$LU_TOP/man/lazy-uffd.1"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	opts=$(for c in "" daemon page-server show doctor; do "$LAZY_UFFD" $c --help; done |
		grep -oE '(^|[^a-zA-Z0-9-])--?[a-zA-Z][a-zA-Z0-9-]*' | sed -E 's/^[^-]*//' | sort -u)
	[ "$(echo "$opts" | wc -l)" -gt 40 ]
	missing=
	for o in $opts; do
		grep -qE -- "(^|[^a-zA-Z0-9-])$o([^a-zA-Z0-9-]|\$)" <<<"$page" || missing+=" $o"
	done
	[ -z "$missing" ] || { echo "not in man/lazy-uffd.1:$missing"; false; }
}

@test "build: criu-lazy-uffd routes 'criu lazy-pages' to lazy-uffd and the rest to criu" {
	[ -r "$LU_CRIU_ENV" ] || { lu_skip "no $LU_CRIU_ENV: run 'make deps'"; return; }
	. "$LU_CRIU_ENV"
	export LAZY_UFFD LAZY_UFFD_CRIU=$CRIU
	run "$LU_TOP/lazy-pages/criu-lazy-uffd" lazy-pages --help
	[ "$status" -eq 0 ]
	[[ "$output" == *"usage: lazy-uffd lazy-pages -D DIR"* ]]
	run "$LU_TOP/lazy-pages/criu-lazy-uffd" --version
	[ "$status" -eq 0 ]
	[[ "$output" == *"Version: $CRIU_SERIES"* ]]
}

@test "build: lazy-uffd daemon refuses incomplete remote options, and a missing -D, with exit 2" {
	run "$LAZY_UFFD" daemon -D /tmp --page-server
	[ "$status" -eq 2 ]
	[[ "$output" == *"--page-server needs --port (the page server's)"* ]]
	run "$LAZY_UFFD" daemon -D /tmp --address 10.0.0.1 --port 1234
	[ "$status" -eq 2 ]
	[[ "$output" == *"--address, --port, --ps-protocol and --ps-socket need --page-server"* ]]
	run "$LAZY_UFFD" daemon
	[ "$status" -eq 2 ]
	[[ "$output" == *"-D/--images-dir is required"* ]]
	run "$LAZY_UFFD" daemon -D /nonexistent/dir
	[ "$status" -eq 1 ]
	[[ "$output" == *"images dir /nonexistent/dir: No such file or directory"* ]]
}

@test "build: lazy-uffd page-server documents --max-sessions and --idle-timeout, and refuses bad values with exit 2, from --config too" {
	run "$LAZY_UFFD" page-server --help
	[ "$status" -eq 0 ]
	[[ "$output" == *"--max-sessions N   sessions at once (default 256"* ]]
	[[ "$output" == *"--idle-timeout S   close a session that has sent nothing, or read nothing"* ]]
	local bad
	for bad in 0 -1 x 2147483648; do
		run "$LAZY_UFFD" page-server -D /tmp --max-sessions "$bad"
		[ "$status" -eq 2 ]
		[[ "$output" == *"bad --max-sessions '$bad'"* ]]
	done
	for bad in -1 x 2147484; do
		run "$LAZY_UFFD" page-server -D /tmp --idle-timeout "$bad"
		[ "$status" -eq 2 ]
		[[ "$output" == *"bad --idle-timeout '$bad'"* ]]
	done
	# The same through --config FILE, in criu's syntax; an option only the daemon has is refused.
	printf 'idle-timeout 2147484  # too long\n' >"$BATS_TEST_TMPDIR/ps.conf"
	run "$LAZY_UFFD" page-server -D /tmp --config "$BATS_TEST_TMPDIR/ps.conf"
	[ "$status" -eq 2 ]
	[[ "$output" == *"bad --idle-timeout '2147484' (seconds, 0 to 2147483)"* ]]
	printf 'ps-socket 5\n' >"$BATS_TEST_TMPDIR/ps.conf"
	run "$LAZY_UFFD" page-server -D /tmp --config "$BATS_TEST_TMPDIR/ps.conf"
	[ "$status" -eq 2 ]
	[[ "$output" == *"line 1: 'ps-socket' is not an option of lazy-uffd page-server (see --help)"* ]]
}

@test "build: the plugin exports only its CRIU descriptor" {
	run nm -D --defined-only "$LU_BUILD/lazy_uffd.so"
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | awk '$2 ~ /[TDB]/ { print $3 }')" = CR_PLUGIN_DESC ]
}

@test "build: make -s print-criu prints the absolute path of an executable criu" {
	[ -r "$LU_CRIU_ENV" ] || { lu_skip "no $LU_CRIU_ENV: run 'make deps'"; return; }
	. "$LU_CRIU_ENV"
	run make -s -C "$LU_TOP" print-criu CRIU_SERIES="$CRIU_SERIES"
	[ "$status" -eq 0 ]
	[ "$output" = "$CRIU" ]
	[[ "$output" == /* ]]
	[ -x "$output" ]
	run "$output" --version
	[[ "$output" == *"Version: $CRIU_SERIES"* ]]
}

@test "build: lazy-uffd --help lists its commands; an unknown command is a usage error" {
	run "$LAZY_UFFD" --help
	[ "$status" -eq 0 ]
	[[ "$output" == *"usage: lazy-uffd COMMAND"* ]]
	[[ "$output" == *"show"* ]]
	[[ "$output" == *"--version"* ]]
	run "$LAZY_UFFD" --version
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^lazy-uffd\ [0-9]+\.[0-9]+\.[0-9]+$ ]]
	run "$LAZY_UFFD" frobnicate
	[ "$status" -eq 2 ]
	[[ "$output" == *"lazy-uffd: error: unknown command 'frobnicate'"* ]]
	run "$LAZY_UFFD"
	[ "$status" -eq 2 ]
}
