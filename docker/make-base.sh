#!/bin/sh
# The image's base: a Debian 13 (trixie) root file system made by debootstrap from Debian's
# archive and written as a tar that Dockerfile.redmine unpacks into an empty image.
#
# Why not a registry image: a registry digest can only be checked where the registry answers;
# this root is checked where it is made. debootstrap verifies the suite's Release file with
# gpgv against Debian's archive keyring (--force-check-gpg: no signature, no root) and every
# package against the SHA-256 that file lists. The keyring is the build machine's
# debian-archive-keyring package, installed by its own apt from the same signed archive.
#
# Usage (as root, on Debian or Ubuntu with debootstrap and debian-archive-keyring):
#   docker/make-base.sh build/base/debian-trixie-rootfs.tar
# Writes OUT (the tar), OUT.sha256 and OUT.packages (each package and version in it), and
# prints the key that signed the Release file. docker/pins.toml records the values below;
# tests/test_dockerfile.py keeps the two in step.
set -eu

suite=trixie
mirror=https://deb.debian.org/debian
security_mirror=https://deb.debian.org/debian-security
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

fail() {
  echo "make-base: $*" >&2
  exit 1
}

[ $# -eq 1 ] || fail "usage: make-base.sh OUT.tar"
out=$1
[ "$(id -u)" = 0 ] || fail "debootstrap needs root: run it as root (e.g. sudo $0 $out)"
command -v debootstrap >/dev/null || fail "debootstrap is not installed (apt-get install debootstrap)"
[ -r "$keyring" ] || fail "$keyring is missing (apt-get install debian-archive-keyring)"

work=$(mktemp -d "${TMPDIR:-/var/tmp}/redmica-base.XXXXXX")
root=$work/root
cleanup() {
  # debootstrap mounts proc and sys inside the root while it runs; a failed run can leave
  # them mounted, and removing the tree must never reach into the host's /proc or /sys.
  for mount in $(awk -v r="$root/" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r); do
    umount "$mount" || umount -l "$mount" || true
  done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT INT TERM

echo "make-base: debootstrap $suite from $mirror (a few minutes)" >&2
if ! debootstrap --variant=minbase --force-check-gpg --keyring="$keyring" \
  --include=ca-certificates,debian-archive-keyring \
  "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1; then
  tail -n 30 "$work/debootstrap.log" >&2
  fail "debootstrap failed (log above)"
fi
# debootstrap stops on a bad signature; this line is the record of which key made it good.
signature=$(grep -m1 '^I: Valid Release signature' "$work/debootstrap.log") ||
  fail "debootstrap did not report a valid Release signature"

# apt in the image: the point release, its updates and Debian's security archive, each
# checked against the archive keyring (apt refuses unsigned or badly signed indexes).
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: $keyring

Types: deb
URIs: $security_mirror
Suites: $suite-security
Components: main
Signed-By: $keyring
EOF

# Packages installed later (the Dockerfile's apt-get) leave out documentation and
# translations: nothing in a server image reads them.
cat >"$root/etc/dpkg/dpkg.cfg.d/redmica-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF

# Nothing of the build machine or of the bootstrap run stays in the image: Docker provides
# hostname, hosts and resolv.conf to every container.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin \
  "$root"/var/lib/apt/lists/* "$root/etc/resolv.conf" "$root/etc/hostname"
find "$root/var/log" -type f -delete
# /run is a fresh tmpfs on a booted system; here it is part of the image, so keep it empty
# but for /run/lock, which /var/lock points to.
find "$root/run" -mindepth 1 -delete
install -d -m 1777 "$root/run/lock"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"

mkdir -p "$(dirname "$out")"
dpkg-query --admindir="$root/var/lib/dpkg" -W -f '${Package} ${Version}\n' >"$out.packages.tmp"
tar --numeric-owner --sort=name -C "$root" \
  --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' --exclude='./tmp/*' -cf "$out.tmp" .
mv "$out.packages.tmp" "$out.packages"
mv "$out.tmp" "$out"
(cd "$(dirname "$out")" && sha256sum "$(basename "$out")") >"$out.sha256"

echo "make-base: $signature" >&2
echo "make-base: $out: $(wc -l <"$out.packages") packages, $(cut -d' ' -f1 "$out.sha256")" >&2
