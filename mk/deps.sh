#!/usr/bin/env bash
# make deps: install the Debian build dependencies and make a working CRIU >= 4.0
# available, then write build/criu-<series>.env, the one place that says which criu
# binary and which plugin headers everything else uses.
#
# usage: mk/deps.sh BUILD_DIR SERIES...   (SERIES: 4.1, 4.2, or cross)
#
# cross (make check-cross): the arm64 libraries the build links against, unpacked into
# build/cross/sysroot, and Debian's arm64 criu 4.1 and 4.2 executables (for the GOT
# finder's test), written down in build/cross.env. The host's dpkg is not told about
# arm64: nothing is installed outside build/.
#
# A second run with everything present is offline and takes well under a second.
set -euo pipefail

build=$(realpath -m "${1:?build dir}")
shift
[ $# -gt 0 ] || set -- 4.1

say() { printf 'deps: %s\n' "$*"; }
die() { printf 'deps: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (apt-get and sysctl); run 'sudo make deps'"

# Debian packages the build and the tests use (runc: Debian's, without the criu 3.17 it
# recommends, which does not run on recent kernels: test/zdtm/runc.bats runs `runc --criu`).
pkgs=(gcc make pkg-config libc6-dev libprotobuf-c-dev protobuf-c-compiler bats
      patchelf util-linux procps iproute2 libgnutls28-dev clang libclang-rt-14-dev
      openssl runc gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static)
missing=()
for p in "${pkgs[@]}"; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$st" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	say "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# CRIU's lazy page server sizes its pipes beyond the default pipe-max-size, and root
# here lacks CAP_SYS_RESOURCE to exceed it ("splice: -1: Bad file descriptor").
want_pipe=$((16 << 20))
cur_pipe=$(cat /proc/sys/fs/pipe-max-size)
if [ "$cur_pipe" -lt "$want_pipe" ]; then
	echo "$want_pipe" >/proc/sys/fs/pipe-max-size
	say "set fs.pipe-max-size from $cur_pipe to $want_pipe (CRIU's lazy page server needs it)"
else
	say "fs.pipe-max-size is $cur_pipe (>= $want_pipe, enough for CRIU's lazy page server)"
fi

# The mirror this host already uses; the private apt state below only adds a suite.
mirror_uri() {
	local f=/etc/apt/sources.list.d/debian.sources uri=
	if [ -r "$f" ]; then
		uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f")
	fi
	if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
		uri=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) { print $i; exit } }' /etc/apt/sources.list)
	fi
	[ -n "$uri" ] || die "no Debian mirror found in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"
	printf '%s\n' "$uri"
}

# version_ge A B: is version A >= B (dotted numbers)?
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

# apt_private DIR SUITE [ARCH]: an apt state of its own in DIR that sees SUITE of the
# host's mirror only (for ARCH, default the host's), updated; its options in apt_opts.
apt_private() {
	local dir=$1 suite=$2 arch=${3:-}
	rm -rf "$dir"
	mkdir -p "$dir"/{lists/partial,cache/archives/partial,debs}
	printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n' \
		"$(mirror_uri)" "$suite" >"$dir/sources.list"
	apt_opts=(-o "Dir::Etc::SourceList=$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
		  -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache"
		  -o Debug::NoLocking=1 -o APT::Sandbox::User=root -qq)
	[ -z "$arch" ] || apt_opts+=(-o "APT::Architecture=$arch" -o "APT::Architectures=$arch")
	apt-get "${apt_opts[@]}" update || die "apt-get update for Debian $suite${arch:+ ($arch)} failed"
}

# fetch_criu SERIES SUITE PREFIX: unpack criu and its libraries (libc included) from a
# Debian suite into PREFIX and point the binary at them. DT_RPATH, not DT_RUNPATH: it
# also applies to the libraries' own dependencies.
fetch_criu() {
	local series=$1 suite=$2 prefix=$3 apt="$build/apt-$2"
	local stamp="$prefix/.lazy-uffd-stamp"
	if [ -f "$stamp" ] && [ -x "$prefix/usr/sbin/criu" ] &&
	   "$prefix/usr/sbin/criu" --version 2>/dev/null | grep -q "Version: $series"; then
		return 0
	fi
	say "fetching criu $series from Debian $suite into $prefix"
	rm -rf "$prefix"
	mkdir -p "$prefix"
	apt_private "$apt" "$suite"
	local opts=("${apt_opts[@]}") list
	list=$(apt-cache "${opts[@]}" depends --recurse --no-recommends --no-suggests \
		--no-conflicts --no-breaks --no-replaces --no-enhances --no-pre-depends \
		criu libcriu-dev libcompel1 | grep -v '^[ <]' | sort -u)
	(cd "$apt/debs" && apt-get "${opts[@]}" download $list) ||
		die "downloading criu $series packages from Debian $suite failed"
	local d
	for d in "$apt"/debs/*.deb; do dpkg-deb -x "$d" "$prefix"; done
	local libdir="$prefix/usr/lib/x86_64-linux-gnu"
	patchelf --set-interpreter "$libdir/ld-linux-x86-64.so.2" --force-rpath \
		--set-rpath "$libdir" "$prefix/usr/sbin/criu"
	"$prefix/usr/sbin/criu" --version | grep -q "Version: $series" ||
		die "criu unpacked from Debian $suite is not version $series"
	rm -rf "$apt"
	touch "$stamp"
}

# fetch_cross DIR: what make check-cross needs from Debian's arm64 packages, in DIR.
# The libraries come from the host's own release, so that they match the headers and
# the protoc-c the host build uses; the criu executables from the suites make deps
# takes the x86_64 ones from. Only unpacked: the sysroot is for linking and qemu.
fetch_cross() {
	local dir=$1 stamp="$1/.lazy-uffd-stamp" host_suite
	if [ -f "$stamp" ] && [ -f "$build/cross.env" ]; then
		return 0
	fi
	host_suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
	[ -n "$host_suite" ] || die "no VERSION_CODENAME in /etc/os-release"
	say "fetching the arm64 libraries from Debian $host_suite into $dir/sysroot"
	rm -rf "$dir"
	mkdir -p "$dir/sysroot"
	apt_private "$dir/apt" "$host_suite" arm64
	# The cross toolchain brings glibc and gcc's libraries: everything else the
	# protobuf-c and GnuTLS development packages depend on.
	local list d suite series
	list=$(apt-cache "${apt_opts[@]}" depends --recurse --no-recommends --no-suggests \
		--no-conflicts --no-breaks --no-replaces --no-enhances --no-pre-depends \
		libprotobuf-c-dev libgnutls28-dev | grep -v '^[ <]' | sort -u |
		grep -vxE 'libc6|libc6-dev|libc-dev-bin|linux-libc-dev|libcrypt1|libcrypt-dev|libnsl2|libnsl-dev|libtirpc3|libtirpc-common|libtirpc-dev|rpcsvc-proto|gcc-[0-9]+-base|libgcc-s1|libstdc\+\+6')
	(cd "$dir/apt/debs" && apt-get "${apt_opts[@]}" download $list) ||
		die "downloading the arm64 libraries from Debian $host_suite failed"
	for d in "$dir"/apt/debs/*.deb; do dpkg-deb -x "$d" "$dir/sysroot"; done
	for series in 4.1 4.2; do
		case "$series" in 4.1) suite=trixie ;; 4.2) suite=sid ;; esac
		say "fetching Debian $suite's arm64 criu $series into $dir/criu-$series"
		apt_private "$dir/apt" "$suite" arm64
		(cd "$dir/apt/debs" && apt-get "${apt_opts[@]}" download criu) ||
			die "downloading criu $series (arm64) from Debian $suite failed"
		mkdir -p "$dir/criu-$series"
		dpkg-deb -x "$dir"/apt/debs/criu_*.deb "$dir/criu-$series"
		dpkg-deb -f "$dir"/apt/debs/criu_*.deb Version | grep -q "^$series" ||
			die "Debian $suite's arm64 criu is not version $series"
	done
	rm -rf "$dir/apt"
	cat >"$build/cross.env.tmp" <<EOT
# written by mk/deps.sh: what make check-cross builds against and tests
CROSS_SYSROOT=$dir/sysroot
CROSS_CRIU_41=$dir/criu-4.1/usr/sbin/criu
CROSS_CRIU_42=$dir/criu-4.2/usr/sbin/criu
EOT
	mv "$build/cross.env.tmp" "$build/cross.env"
	touch "$stamp"
}

# The plugin is always built against 4.1's headers: 4.1 refuses a plugin declaring 4.2's
# larger hook table, while 4.2 accepts 4.1's.
plugin_prefix="$build/criu-4.1"
fetch_criu 4.1 trixie "$plugin_prefix"
plugin_inc="$plugin_prefix/usr/include/criu"

for series in "$@"; do
	if [ "$series" = cross ]; then
		fetch_cross "$build/cross"
		say "arm64 sysroot and criu executables: $build/cross.env"
		continue
	fi
	case "$series" in
	4.1) suite=trixie ;;
	4.2) suite=sid ;;
	*) die "unknown CRIU_SERIES '$series' (use 4.1 or 4.2)" ;;
	esac
	criu=
	sys=$(command -v criu || true)
	if [ -n "$sys" ]; then
		v=$("$sys" --version 2>/dev/null | awk '/^Version:/ { print $2 }')
		if [ -n "$v" ] && version_ge "$v" 4.0 && [ "${v%.*}" = "$series" ] &&
		   "$sys" check >/dev/null 2>&1; then
			criu=$(realpath "$sys")
			say "using system criu $v at $criu for series $series"
		fi
	fi
	if [ -z "$criu" ]; then
		prefix="$build/criu-$series"
		fetch_criu "$series" "$suite" "$prefix"
		criu="$prefix/usr/sbin/criu"
	fi
	version=$("$criu" --version | awk '/^Version:/ { print $2 }')
	if ! out=$("$criu" check 2>&1); then
		die "criu $version at $criu fails 'criu check' on this kernel: $out"
	fi
	env="$build/criu-$series.env"
	cat >"$env.tmp" <<EOT
# written by mk/deps.sh: the criu that lazy-uffd's build and tests use
CRIU=$criu
CRIU_SERIES=$series
CRIU_VERSION=$version
CRIU_PLUGIN_INCLUDE=$plugin_inc
EOT
	mv "$env.tmp" "$env"
	say "criu $version ($series): $criu"
done
