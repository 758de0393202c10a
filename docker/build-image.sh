#!/bin/sh
# `make image`: build Dockerfile.redmine where a Docker engine runs. Makes the Debian 13 base
# first when it is missing (docker/make-base.sh, root), then builds the image, then copies the
# image's Gemfile.lock (the gem set the build resolved, with checksums) to build/image/.
# Usage: docker/build-image.sh [TAG]      (TAG defaults to redmica-app:dev)
# Exit codes: 0 built; 2 no Docker engine here or no root for the base; 1 the build failed.
set -eu
cd "$(dirname "$0")/.."

tag=${1:-redmica-app:dev}
docker=${DOCKER:-docker}
base=build/base/debian-trixie-rootfs.tar

fail() {
  echo "make image: $1" >&2
  exit "${2:-1}"
}

command -v "$docker" >/dev/null 2>&1 ||
  fail "needs a Docker engine, and there is no '$docker' command here; build on a machine with Docker (docs/container.md, \"The image\")" 2
if ! problem=$("$docker" info 2>&1 >/dev/null); then
  fail "needs a Docker engine, and '$docker info' reached none: $(printf '%s\n' "$problem" | grep -m1 . || true)" 2
fi

if [ ! -f "$base" ]; then
  if [ "$(id -u)" = 0 ]; then
    docker/make-base.sh "$base"
  elif command -v sudo >/dev/null 2>&1; then
    sudo docker/make-base.sh "$base"
  else
    fail "the base is made with debootstrap, as root: run 'docker/make-base.sh $base' as root once, then make image again" 2
  fi
fi

DOCKER_BUILDKIT=1 "$docker" build -f Dockerfile.redmine -t "$tag" . || fail "docker build failed (its output is above)"
mkdir -p build/image
"$docker" run --rm --entrypoint cat "$tag" /usr/src/redmine/Gemfile.lock >build/image/Gemfile.lock ||
  fail "could not read Gemfile.lock from $tag"
echo "make image: built $tag on base $(cut -d' ' -f1 "$base.sha256"); its gems: build/image/Gemfile.lock" >&2
