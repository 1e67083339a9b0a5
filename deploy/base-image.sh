#!/bin/sh
# Makes the Dockerfile's base image locally, for machines that reach Debian's
# apt mirror but no container registry:
#   debootstrap --variant=minbase bookworm DIR, then podman import, tagged
#   with the name the Dockerfile's FROM lines use.
#
#   deploy/base-image.sh [TAG]      (as root; TAG defaults to the FROM name)
#
# Skips the work when the tag already exists. Needs debootstrap and podman
# (apt-get install debootstrap podman). Storage: podman's vfs driver, the
# one that works without overlay support or a user namespace.
set -eu
cd "$(dirname "$0")/.."
TAG=${1:-$(sed -n 's/^FROM \([^ ]*\) AS build$/\1/p' Dockerfile | head -n 1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
PODMAN="podman --storage-driver vfs"
[ -n "$TAG" ] || { echo "base-image.sh: no 'FROM ... AS build' line in Dockerfile" >&2; exit 1; }

if $PODMAN image exists "$TAG"; then
	echo "base-image.sh: $TAG already exists"
	exit 0
fi
for tool in debootstrap podman; do
	command -v $tool >/dev/null || { echo "base-image.sh: $tool missing (apt-get install $tool)" >&2; exit 1; }
done
dir=$(mktemp -d /var/tmp/shopkeeper-base.XXXXXX)
trap 'rm -rf "$dir"' EXIT
echo "base-image.sh: debootstrap bookworm into $dir"
debootstrap --variant=minbase bookworm "$dir" "$MIRROR" >"$dir.log" 2>&1 ||
	{ tail -n 20 "$dir.log" >&2; rm -f "$dir.log"; exit 1; }
rm -f "$dir.log"
# mktemp made the directory 0700: as the image's root it would lock every
# non-root user out of the whole file system.
chmod 755 "$dir"
# What a slim image leaves out: apt lists and caches.
rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb
tar -C "$dir" --numeric-owner -cf - . | $PODMAN import --change 'CMD ["bash"]' - "$TAG"
echo "base-image.sh: imported $TAG"
