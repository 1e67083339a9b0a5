#!/bin/sh
# The build steps of the container image, in one place: the Dockerfile runs
# them, and CI (.ci/run) runs them natively on every change, so the image's
# recipe cannot rot unnoticed.
#
#   deploy/build.sh deps            apt-get install BUILD_PKGS (root; skipped when present)
#   deploy/build.sh build           make -j2 server (the shipped binary only), then
#                                   check that it runs
#   deploy/build.sh install DIR     DIR/usr/local/bin/shopkeeper (stripped)
#   deploy/build.sh runtime-deps    apt-get install RUNTIME_PKGS only (the image's last stage)
#   deploy/build.sh check-runtime [BIN]
#                                   every library BIN links (default bin/shopkeeper)
#                                   comes from RUNTIME_PKGS or the base system
#   deploy/build.sh check-ldd BIN   the dynamic loader finds all of BIN's libraries
#   deploy/build.sh                 deps (as root), build, check-runtime
set -eu
cd "$(dirname "$0")/.."

BUILD_PKGS="build-essential pkg-config libmicrohttpd-dev libjansson-dev liblmdb-dev libopenblas-dev libhiredis-dev"
# What the binary links (libhiredis for --event-log; Redis itself runs
# elsewhere), plus: curl for HEALTHCHECK, gzip for compressed
# training input (read through `gzip -dc`), lmdb-utils for `mdb_copy`
# backups of the state while serving.
RUNTIME_LIBS="libmicrohttpd12 libjansson4 liblmdb0 libopenblas0-pthread libhiredis0.14"
RUNTIME_PKGS="$RUNTIME_LIBS curl ca-certificates gzip lmdb-utils"
# Always present in a Debian base image (priority required).
BASE_PKGS="libc6 libgcc-s1"

say() { echo "build.sh: $*"; }

apt_install() { # only what is missing; apt lists removed afterwards, as a slim image wants
	missing=""
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			missing="$missing $p"
	done
	[ -n "$missing" ] || { say "packages present"; return 0; }
	[ "$(id -u)" = 0 ] || { say "missing:$missing (run as root, or apt-get install them)"; exit 1; }
	say "apt-get install$missing"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
	[ -z "${BUILD_SH_CLEAN_APT:-}" ] || rm -rf /var/lib/apt/lists/*
}

build() {
	# Only what the image ships: the Dockerfile copies include/ and src/,
	# not bench/, so `all` (which builds the bench tools too) cannot run there.
	make -j2 server
	bin/shopkeeper --version >/dev/null
	bin/shopkeeper serve --help | grep -q -- "--access-log" || { say "bin/shopkeeper serve --help: no --access-log"; exit 1; }
	say "built bin/shopkeeper ($(bin/shopkeeper --version))"
}

install_to() {
	dest=$1
	mkdir -p "$dest/usr/local/bin"
	cp bin/shopkeeper "$dest/usr/local/bin/shopkeeper"
	strip --strip-unneeded "$dest/usr/local/bin/shopkeeper"
	say "installed $dest/usr/local/bin/shopkeeper"
}

# The package of each library in BIN's NEEDED entries must be one the
# runtime stage installs (or the base system's).
check_runtime() {
	bin=${1:-bin/shopkeeper}
	bad=0
	for lib in $(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }'); do
		real=$(readlink -f "$lib")
		pkg=$(dpkg -S "$real" 2>/dev/null | head -n 1 | cut -d: -f1) || pkg=""
		[ -n "$pkg" ] || pkg=$(dpkg -S "$lib" 2>/dev/null | head -n 1 | cut -d: -f1) || pkg=""
		case " $RUNTIME_LIBS $BASE_PKGS " in
		*" $pkg "*) ;;
		*)
			# A library pulled in by one of RUNTIME_LIBS (libgfortran5 for
			# OpenBLAS) is fine: apt installs it with them.
			if [ -n "$pkg" ] && apt-cache depends --recurse --no-recommends --no-suggests \
				--no-conflicts --no-breaks --no-replaces --no-enhances $RUNTIME_LIBS 2>/dev/null |
				grep -qx "  *Depends: $pkg\|$pkg"; then
				:
			else
				say "$bin needs $lib ($real), package '${pkg:-?}', not in RUNTIME_LIBS"
				bad=1
			fi
			;;
		esac
	done
	[ $bad = 0 ] || exit 1
	say "runtime packages cover every library of $bin"
}

check_ldd() {
	if ldd "$1" | grep "not found"; then
		say "$1: libraries missing"
		exit 1
	fi
	"$1" --version >/dev/null
	say "$1 runs ($("$1" --version))"
}

case "${1:-all}" in
deps) apt_install $BUILD_PKGS ;;
build) build ;;
install) [ $# = 2 ] || { say "install DIR"; exit 2; }; install_to "$2" ;;
runtime-deps) apt_install $RUNTIME_PKGS ;;
check-runtime) check_runtime "${2:-bin/shopkeeper}" ;;
check-ldd) [ $# = 2 ] || { say "check-ldd BIN"; exit 2; }; check_ldd "$2" ;;
all)
	if [ "$(id -u)" = 0 ]; then apt_install $BUILD_PKGS; fi
	build
	check_runtime bin/shopkeeper
	;;
*) sed -n '2,18p' "$0"; exit 2 ;;
esac
