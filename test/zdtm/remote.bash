# Remote lazy restores for test/zdtm/remote*.bats: `load remote` after `load zdtm`.
#
# The source (the dumped program, criu dump or a page server) runs in one network
# namespace, the destination (the lazy-pages daemon and criu restore) in another, joined
# by a veth pair: 10.77.0.1 (source) and 10.77.0.2 (destination). Each test makes its own
# pair and removes it, so the fixed port cannot clash with anything else.
#
#   zdtm_remote_setup            make the namespaces (after zdtm_setup)
#   zdtm_remote_run MODE PROG [ARGS...]
#                                a whole remote lazy cycle that must PASS, with a clean
#                                exit of the daemon and of the source side; MODE:
#     dump   our daemon; source `criu dump --lazy-pages --port` (lazy pages stay in it)
#     ps     our daemon; source `criu page-server --lazy-pages` on a normal dump
#     criu   `criu lazy-pages --page-server`; source our `lazy-uffd page-server --once`
#     ours   our daemon; source our page server
#   ZDTM_REMOTE_PS_SOCKET=1      our daemon given the connection as --ps-socket FD
#   ZDTM_REMOTE_TLS=1            both sides with --tls and certificates made by openssl
#                                (CN and subjectAltName 10.77.0.1: CRIU checks the
#                                peer's name against its own --address on both ends)
#   zdtm_remote_start_source MODE / zdtm_remote_copy [DST] / zdtm_remote_restore DAEMON /
#   zdtm_remote_finish_source    the steps of zdtm_remote_run, for tests that vary them
#   zdtm_remote_ps_start [ARGS]  our page server in the source namespace on ZDTM_SRCIMG
#   ZDTM_REMOTE_SRC_WRAP=(...)   a prefix for the source side's server inside its
#                                namespace (bench/bench.sh: taskset -c 1)
#
# The destination copy of the images has every lazy page overwritten (scrub-lazy), so a
# daemon that read local files instead of asking the page server would fail the byte check.

ZDTM_REMOTE_SRC_IP=10.77.0.1
ZDTM_REMOTE_DST_IP=10.77.0.2
ZDTM_REMOTE_PORT=27027
ZDTM_REMOTE_TIMEOUT=${ZDTM_REMOTE_TIMEOUT:-60}

zdtm_remote_setup() {
	local tag=$$-${BATS_TEST_NUMBER:-0}
	ZDTM_NS_SRC=lu-src-$tag
	ZDTM_NS_DST=lu-dst-$tag
	ZDTM_SRCPID=
	ZDTM_SRCCOMM=
	ZDTM_SRCIMG=$ZDTM_DIR/img
	ZDTM_REMOTE_MODE=
	ZDTM_TLS_ARGS=()
	ZDTM_REMOTE_DAEMON_ARGS=()
	ZDTM_REMOTE_SRC_WRAP=()
	ip netns add "$ZDTM_NS_SRC" && ip netns add "$ZDTM_NS_DST" || {
		echo "cannot create network namespaces"
		return 1
	}
	ip link add ve-src netns "$ZDTM_NS_SRC" type veth peer name ve-dst netns "$ZDTM_NS_DST" || return 1
	ip -n "$ZDTM_NS_SRC" addr add "$ZDTM_REMOTE_SRC_IP/24" dev ve-src
	ip -n "$ZDTM_NS_DST" addr add "$ZDTM_REMOTE_DST_IP/24" dev ve-dst
	local ns
	for ns in "$ZDTM_NS_SRC" "$ZDTM_NS_DST"; do
		ip -n "$ns" link set lo up
	done
	ip -n "$ZDTM_NS_SRC" link set ve-src up
	ip -n "$ZDTM_NS_DST" link set ve-dst up
	# nsenter joins only the network namespace (ip netns exec would also make a mount
	# namespace, which criu dump would then have to dump).
	ZDTM_SRC_NS=(nsenter --net=/run/netns/"$ZDTM_NS_SRC")
	ZDTM_DST_NS=(nsenter --net=/run/netns/"$ZDTM_NS_DST")
	return 0
}

zdtm_remote_teardown() {
	[ -n "${ZDTM_SRCPID:-}" ] && zdtm_kill "$ZDTM_SRCPID" "$ZDTM_SRCCOMM"
	local i
	# A killed source leaves the namespace only once it is gone.
	for ((i = 0; i < 100; i++)); do
		[ -n "${ZDTM_SRCPID:-}" ] && zdtm_alive "$ZDTM_SRCPID" || break
		sleep 0.05
	done
	[ -n "${ZDTM_DIR:-}" ] && rm -rf "$ZDTM_DIR/dst" "$ZDTM_DIR/dst-chain"
	[ -n "${ZDTM_NS_SRC:-}" ] && ip netns del "$ZDTM_NS_SRC" 2>/dev/null
	[ -n "${ZDTM_NS_DST:-}" ] && ip netns del "$ZDTM_NS_DST" 2>/dev/null
	ZDTM_NS_SRC=
	ZDTM_NS_DST=
	return 0
}

# zdtm_remote_certs: a CA and one certificate for 10.77.0.1 (both ends present it), made
# once per run; sets ZDTM_TLS_ARGS.
zdtm_remote_certs() {
	local d=${BATS_RUN_TMPDIR:-$BATS_TMPDIR}/lu-certs out
	if [ ! -s "$d/cert.pem" ]; then
		mkdir -p "$d.tmp"
		out=$(cd "$d.tmp" &&
			openssl req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out cacert.pem -days 2 \
				-subj "/CN=lazy-uffd test CA" 2>&1 &&
			openssl req -newkey rsa:2048 -nodes -keyout key.pem -out req.pem \
				-subj "/CN=$ZDTM_REMOTE_SRC_IP" 2>&1 &&
			printf 'subjectAltName=IP:%s\nextendedKeyUsage=serverAuth,clientAuth\n' \
				"$ZDTM_REMOTE_SRC_IP" >ext.cnf &&
			openssl x509 -req -in req.pem -CA cacert.pem -CAkey ca-key.pem -CAcreateserial \
				-out cert.pem -days 2 -extfile ext.cnf 2>&1) ||
			{ echo "openssl: $out"; return 1; }
		rm -rf "$d" && mv "$d.tmp" "$d"
	fi
	ZDTM_TLS_DIR=$d
	ZDTM_TLS_ARGS=(--tls --tls-cacert "$d/cacert.pem" --tls-cert "$d/cert.pem" --tls-key "$d/key.pem")
}

# zdtm_remote_tls_args: the TLS options for both ends, or nothing.
zdtm_remote_tls() {
	ZDTM_TLS_ARGS=()
	[ "${ZDTM_REMOTE_TLS:-0}" = 1 ] || return 0
	zdtm_remote_certs
}

# zdtm_remote_bg_ready COMM LOG CMD...: run CMD (which writes one NUL byte to fd 9 when
# ready) in the background; sets ZDTM_SRCPID/ZDTM_SRCCOMM once the byte came.
zdtm_remote_bg_ready() {
	local comm=$1 log=$2 st=$ZDTM_DIR/src-ready i
	shift 2
	rm -f "$st"
	"$@" 9>"$st" </dev/null >"$log" 2>&1 3>&- &
	ZDTM_SRCPID=$!
	ZDTM_SRCCOMM=$comm
	for ((i = 0; i < ZDTM_READY_TIMEOUT * 20; i++)); do
		if [ -s "$st" ]; then
			[ "$(od -An -tx1 "$st" | tr -d ' \n')" = 00 ] && return 0
			break
		fi
		zdtm_alive "$ZDTM_SRCPID" || break
		sleep 0.05
	done
	zdtm_fail "$comm (source side) did not get ready ($(od -An -tx1 "$st" 2>/dev/null)): $(tail -n 5 "$log")"
}

# zdtm_remote_ps_start [ARGS...]: our page server on ZDTM_SRCIMG in the source namespace.
zdtm_remote_ps_start() {
	zdtm_remote_bg_ready lazy-uffd "$ZDTM_DIR/ps.out" "${ZDTM_SRC_NS[@]}" \
		"${ZDTM_REMOTE_SRC_WRAP[@]}" "$LAZY_UFFD" page-server -D "$ZDTM_SRCIMG" -W "$ZDTM_DIR" -o ps.log \
		-v"${ZDTM_VERBOSITY:-4}" --address "$ZDTM_REMOTE_SRC_IP" \
		--port "$ZDTM_REMOTE_PORT" --status-fd 9 "${ZDTM_TLS_ARGS[@]}" "$@"
}

# zdtm_remote_start_source MODE: after zdtm_start, the source side of MODE.
zdtm_remote_start_source() {
	if [ "$1" != dump ]; then
		zdtm_dump || return 1
	fi
	zdtm_remote_serve "$1"
}

# zdtm_remote_serve MODE: the source's page server on ZDTM_SRCIMG (a lazy dump for dump).
zdtm_remote_serve() {
	ZDTM_REMOTE_MODE=$1
	zdtm_remote_tls || return 1
	case $1 in
	dump)
		# All images are written before it listens; it then serves from the frozen tree.
		zdtm_remote_bg_ready criu "$ZDTM_DIR/dump.out" "${ZDTM_SRC_NS[@]}" \
			"${ZDTM_REMOTE_SRC_WRAP[@]}" "$CRIU" dump -t "$ZDTM_PID" -D "$ZDTM_SRCIMG" -o dump.log \
			-v"${ZDTM_VERBOSITY:-4}" --lazy-pages \
			--address "$ZDTM_REMOTE_SRC_IP" --port "$ZDTM_REMOTE_PORT" --status-fd 9 \
			"${ZDTM_TLS_ARGS[@]}"
		;;
	ps)
		zdtm_remote_bg_ready criu "$ZDTM_DIR/ps.out" "${ZDTM_SRC_NS[@]}" \
			"${ZDTM_REMOTE_SRC_WRAP[@]}" "$CRIU" page-server --lazy-pages -D "$ZDTM_SRCIMG" -o ps.log \
			-v"${ZDTM_VERBOSITY:-4}" --address "$ZDTM_REMOTE_SRC_IP" \
			--port "$ZDTM_REMOTE_PORT" --status-fd 9 "${ZDTM_TLS_ARGS[@]}"
		;;
	criu | ours)
		zdtm_remote_ps_start --once
		;;
	*)
		zdtm_fail "unknown remote mode '$1'"
		;;
	esac
}

# zdtm_remote_copy [DST]: the destination's copy of the images (lazy data scrubbed) in
# DST (ZDTM_DIR/dst): ZDTM_IMG.
zdtm_remote_copy() {
	local dst=${1:-$ZDTM_DIR/dst} out
	rm -rf "$dst" "$ZDTM_DIR/dst-chain"
	if [ "$(dirname "$ZDTM_SRCIMG")" = "$ZDTM_DIR/chain" ]; then
		# A parent chain: the whole of it (its links are relative).
		cp -a "$ZDTM_DIR/chain" "$ZDTM_DIR/dst-chain" || { zdtm_fail "copying the images failed"; return 1; }
		dst=$ZDTM_DIR/dst-chain/$(basename "$ZDTM_SRCIMG")
	else
		cp -a "$ZDTM_SRCIMG" "$dst" || { zdtm_fail "copying the images failed"; return 1; }
	fi
	rm -f "$dst"/*.log
	out=$("$LU_BUILD/test/tools/scrub-lazy" "$dst" 2>&1) || { zdtm_fail "scrub-lazy: $out"; return 1; }
	ZDTM_IMG=$dst
}

# zdtm_remote_restore DAEMON: the lazy restore at the destination, pages from the source.
# ZDTM_REMOTE_PS_SOCKET=1: criu's --ps-socket instead of --address/--port: the connection
# is made beforehand, in the destination's namespace, by a shell that then runs the daemon
# with it as fd 5 (ZDTM_REMOTE_DAEMON_ARGS may add --port for the urgent channel).
zdtm_remote_restore() {
	local server=(--address "$ZDTM_REMOTE_SRC_IP" --port "$ZDTM_REMOTE_PORT")
	if [ -n "${ZDTM_REMOTE_PS_SOCKET:-}" ]; then
		server=(--ps-socket 5)
		# shellcheck disable=SC2016 # expanded by the inner shell
		ZDTM_DAEMON_WRAP=(bash -c 'exec 5<>"/dev/tcp/$0/$1" && exec "${@:2}"' "$ZDTM_REMOTE_SRC_IP"
			"$ZDTM_REMOTE_PORT")
	fi
	ZDTM_DAEMON_ARGS=(--page-server "${server[@]}" "${ZDTM_TLS_ARGS[@]}" "${ZDTM_REMOTE_DAEMON_ARGS[@]}")
	zdtm_lazy_restore "$1"
}

# zdtm_remote_finish_source: the source side must end by itself, with status 0.
zdtm_remote_finish_source() {
	local i rc=0 log
	for ((i = 0; i < ZDTM_REMOTE_TIMEOUT * 20; i++)); do
		zdtm_alive "$ZDTM_SRCPID" || break
		sleep 0.05
	done
	zdtm_alive "$ZDTM_SRCPID" &&
		{ zdtm_fail "source side ($ZDTM_SRCCOMM $ZDTM_REMOTE_MODE) still runs ${ZDTM_REMOTE_TIMEOUT}s later"; return 1; }
	wait "$ZDTM_SRCPID" || rc=$?
	ZDTM_SRCPID=
	case $ZDTM_REMOTE_MODE in
	dump) log=$ZDTM_SRCIMG/dump.log ;;
	ps) log=$ZDTM_SRCIMG/ps.log ;;
	*) log=$ZDTM_DIR/ps.log ;;
	esac
	[ "$rc" = 0 ] || { zdtm_fail "source side ($ZDTM_REMOTE_MODE) exited $rc: $(zdtm_lazy_errors "$log" | tail -n 3)"; return 1; }
	if [ "$ZDTM_REMOTE_MODE" = dump ]; then
		# The lazy dump kills the dumped tree once its page server is done.
		for ((i = 0; i < 200; i++)); do
			zdtm_alive "$ZDTM_PID" || break
			sleep 0.05
		done
		zdtm_alive "$ZDTM_PID" && { zdtm_fail "dumped tree $ZDTM_PID still alive after the lazy dump ended"; return 1; }
	fi
	local errs
	errs=$(zdtm_lazy_errors "$log")
	[ -z "$errs" ] || { zdtm_fail "source side log $log has errors: $errs"; return 1; }
}

# zdtm_remote_diag: the source side's logs as well.
zdtm_remote_diag() {
	local f
	for f in "$ZDTM_DIR/dump.out" "$ZDTM_DIR/ps.out" "$ZDTM_SRCIMG/ps.log" "$ZDTM_DIR/ps.log"; do
		[ -s "$f" ] || continue
		echo "--- tail of $f"
		tail -n 15 "$f"
	done
}

# zdtm_remote_again: forget a remote attempt (source server, restored tree, daemon, files).
zdtm_remote_again() {
	zdtm_kill "$ZDTM_SRCPID" "$ZDTM_SRCCOMM"
	wait "$ZDTM_SRCPID" 2>/dev/null || true
	ZDTM_SRCPID=
	zdtm_lazy_reset
	rm -rf "$ZDTM_DIR/dst" "$ZDTM_DIR/dst-chain"
	ZDTM_SRCIMG=$ZDTM_DIR/img
}

# zdtm_remote_run MODE PROG [ARGS...]
# As with zdtm_run_lazy, a run whose --expect-lazy probes found their memory already
# there (the background transfer won the race on a busy machine) proves nothing either
# way: it runs again, up to ZDTM_LAZY_ATTEMPTS (3) times in all, then fails.
zdtm_remote_run() {
	local mode=$1 daemon=ours n
	shift
	[ "$mode" = criu ] && daemon=criu
	for ((n = 1; ; n++)); do
		zdtm_start "$@" --expect-lazy --settle || return 1
		zdtm_remote_start_source "$mode" || { zdtm_remote_diag; return 1; }
		zdtm_remote_copy || return 1
		if ! zdtm_dump_has_lazy "$ZDTM_IMG" && ((n < ${ZDTM_LAZY_ATTEMPTS:-3})); then
			# Seen a few times in ~1000 runs with criu 4.2 on a loaded machine: a
			# plain dump with no PE_LAZY entry. A restore of it is eager and proves
			# nothing about lazy pages; an image problem, not ours: dump again.
			echo "zdtm: attempt $n: criu dump marked no page lazy ($("$LAZY_UFFD" show "$ZDTM_IMG" |
				grep -m1 total)); again"
			zdtm_remote_again
			continue
		fi
		zdtm_remote_restore "$daemon" || { zdtm_remote_diag; return 1; }
		if ! { zdtm_stop && zdtm_expect_pass && zdtm_lazy_wait && zdtm_lazy_check_daemon; }; then
			if zdtm_criu_lost_race && ((n < ${ZDTM_LAZY_ATTEMPTS:-3})); then
				echo "zdtm: attempt $n: $ZDTM_CRIU_RACE; again"
				zdtm_remote_again
				continue
			fi
			zdtm_remote_diag
			return 1
		fi
		zdtm_remote_finish_source || { zdtm_remote_diag; return 1; }
		zdtm_remote_check_stats || return 1
		zdtm_lazy_exercised quiet && return 0
		if ((n >= ${ZDTM_LAZY_ATTEMPTS:-3})); then
			zdtm_lazy_exercised
			echo "(after $n attempts)"
			return 1
		fi
		echo "zdtm: attempt $n did not exercise the lazy path: $(cat "$ZDTM_OUT".*inconclusive | head -n 1); again"
		zdtm_lazy_reset
		rm -rf "$ZDTM_DIR/dst" "$ZDTM_DIR/dst-chain"
		ZDTM_SRCIMG=$ZDTM_DIR/img
	done
}

# zdtm_remote_chain_run MODE FLAGS LEVELS PROG [ARGS...]: a remote run of a parent chain
# made from the dump (zdtm_mkchain), served from the source.
zdtm_remote_chain_run() {
	local mode=$1 flags=$2 levels=$3 daemon=ours
	shift 3
	[ "$mode" = criu ] && daemon=criu
	zdtm_start "$@" --expect-lazy --settle || return 1
	zdtm_dump || return 1
	zdtm_mkchain "$flags" "$levels" || return 1
	ZDTM_SRCIMG=$ZDTM_IMG
	zdtm_remote_serve "$mode" || { zdtm_remote_diag; return 1; }
	zdtm_remote_copy || return 1
	zdtm_remote_restore "$daemon" || { zdtm_remote_diag; return 1; }
	zdtm_stop || { zdtm_remote_diag; return 1; }
	zdtm_expect_pass || { zdtm_remote_diag; return 1; }
	zdtm_lazy_finish || { zdtm_remote_diag; return 1; }
	zdtm_remote_finish_source || { zdtm_remote_diag; return 1; }
	zdtm_remote_check_stats
}

# zdtm_remote_check_stats: our daemon's --stats say the pages came over the network.
zdtm_remote_check_stats() {
	[ "$ZDTM_DAEMON" = ours ] || return 0
	local pages
	pages=$(grep -oE '"remote": \{"requests": [0-9]+, "urgent_requests": [0-9]+, "pages": [0-9]+' "$ZDTM_STATS" |
		grep -oE '[0-9]+$')
	[ -n "$pages" ] && [ "$pages" -gt 0 ] ||
		{ zdtm_fail "our daemon's --stats show no pages from the page server"; return 1; }
	if [ "${ZDTM_REMOTE_TLS:-0}" = 1 ] && ! grep -q '"tls": true' "$ZDTM_STATS"; then
		zdtm_fail "our daemon's --stats say the connection was not TLS"
		return 1
	fi
}

# zdtm_remote_stats_pids: the sorted vpids our daemon's --stats lists, one line.
zdtm_remote_stats_pids() {
	grep -oE '"pid": *[0-9]+' "$ZDTM_STATS" | grep -oE '[0-9]+$' | sort -n | tr '\n' ' '
}
