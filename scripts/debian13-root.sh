#!/usr/bin/env bash
# A Debian 13 (trixie) root with Redmine 6.0, Ruby 3.3, Rails 7.2, Apache + Passenger 6.0.26 and
# PostgreSQL 17: where `make e2e` and `make bench` run Redmine, so the tests run on the Redmine 6
# line whatever Debian the machine has (docs/try-it-on-one-machine.md).
#
#   scripts/debian13-root.sh path        build the root when missing; print its directory
#   scripts/debian13-root.sh where       print the directory the root has or will have
#   scripts/debian13-root.sh run CMD...  run CMD inside, in the clone (mounted at /src), with the
#                                        clone's .venv-debian13 (made inside on first use) first
#                                        on PATH
#   scripts/debian13-root.sh clean       remove every cached root (and stale half-built ones);
#                                        run it while no run uses them
#
# Made by debootstrap from Debian's archive, signatures checked against the machine's
# debian-archive-keyring; cached outside the clone, in $REDMICA_ROOT_CACHE (default
# /var/cache/redmica-ops), under a name carrying the hash of the recipe below (the package list
# and the build steps), so CI and every clone reuse it and a change of the recipe builds a new
# one. Built in a temporary directory and renamed when complete, under a lock: an interrupted
# build is never used.
#
# REDMICA_DEBIAN13_ROOT=DIR uses DIR (an existing root) instead of the cached one.
#
# Entered with unshare (new mount and PID namespaces, the host's network) + chroot, on an
# overlay: the cached root stays read-only and each run's changes (/tmp, /etc/redmine, logs)
# are thrown away with it. The run's command is a child of the namespace's first process:
# when it ends, however (Ctrl-C, a failure, a kill), the kernel ends every process left in the
# namespace, so no Apache, PostgreSQL or Passenger outlives a run.
set -euo pipefail

# >>> recipe: the root's name carries the hash of the lines from here to "<<< recipe"
SUITE=trixie
MIRROR="${REDMICA_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
# What the runs need: Debian's Redmine for PostgreSQL, Apache + Passenger, PostgreSQL (its
# server binaries, for private clusters; openssl for a TLS one), Python with venv for
# redmica-ops and the tests; Bootsnap and jemalloc as the image has them (docs/container.md,
# "Cold starts"), for the density benchmark.
PACKAGES=(
  redmine redmine-pgsql apache2 libapache2-mod-passenger postgresql openssl
  python3 python3-venv ca-certificates ruby-bootsnap libjemalloc2
)
build() {
  if ! command -v debootstrap >/dev/null || [ ! -f "$KEYRING" ]; then
    say "installing debootstrap and debian-archive-keyring"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap debian-archive-keyring \
      >/dev/null
  fi
  local tmp log started
  started=$SECONDS
  # Half-built roots of an interrupted build: nobody else builds while we hold the lock.
  rm -rf "$CACHE/debian13-$hash.tmp."*
  tmp="$(mktemp -d "$CACHE/debian13-$hash.tmp.XXXXXX")"
  chmod 0755 "$tmp"  # the root's "/": www-data, postgres and _apt must get through it
  log="$tmp.log"
  say "building $ROOT (debootstrap $SUITE, then ${#PACKAGES[@]} packages; log $log)"
  # The keyring given explicitly and --force-check-gpg (no gpgv, no root): a Release file whose
  # signature does not check, or cannot be checked, fails the build; the packages must match
  # the SHA-256 it lists. The same as docker/make-base.sh does for the image's base.
  if ! debootstrap --variant=minbase --force-check-gpg --keyring="$KEYRING" "$SUITE" "$tmp" \
      "$MIRROR" >"$log" 2>&1; then
    tail -30 "$log" >&2
    say "debootstrap failed (the log is above)"
    exit 1
  fi
  # Nothing installed here may start a service (the runs start their own servers), and
  # PostgreSQL needs no default cluster (the runs make private ones).
  printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
  chmod 0755 "$tmp/usr/sbin/policy-rc.d"
  mkdir -p "$tmp/etc/postgresql-common"
  echo "create_main_cluster = false" >"$tmp/etc/postgresql-common/createcluster.conf"
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$tmp/etc/hosts"
  # Debian's Redmine must not make a database of its own: redmica's tenants bring theirs.
  if ! enter build "$tmp" "" /bin/sh -c '
      set -e
      echo "redmine redmine/instances/default/dbconfig-install boolean false" \
        | debconf-set-selections
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
      apt-get clean
      rm -rf /var/lib/apt/lists/*
      dpkg-query -W "$@" ruby ruby-rails libapache2-mod-passenger > /etc/redmica-ops-root
    ' sh "${PACKAGES[@]}" >>"$log" 2>&1; then
    tail -30 "$log" >&2
    say "installing the packages failed (the log is above)"
    exit 1
  fi
  mv -T "$tmp" "$ROOT"
  mv "$log" "$ROOT.log"
  say "built $ROOT in $((SECONDS - started)) s"
}
# <<< recipe

CACHE="${REDMICA_ROOT_CACHE:-/var/cache/redmica-ops}"
CLONE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV=.venv-debian13
# Only these reach the command inside; the host's AWS_*, REDMICA_* and the like stay outside.
PASS_ENV=(TERM CI E2E_KEEP BENCH_KEEP PYTEST_ADDOPTS)

say() { echo "debian13-root: $*" >&2; }

hash="$(sed -n '/^# >>> recipe/,/^# <<< recipe/p' "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"
ROOT="${REDMICA_DEBIAN13_ROOT:-$CACHE/debian13-$hash}"

usable() {
  # Root on Debian (or any machine with apt-get), with unshare and chroot.
  [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null && command -v unshare >/dev/null \
    && command -v chroot >/dev/null
}

# -- inside the namespaces ------------------------------------------------------------------------
# Runs as the first process of the new PID namespace (so it reaps what is orphaned inside),
# in a mount namespace of its own: every mount below disappears with the namespace.
inside() {
  local mode="$1" target="$2" run="$3"
  shift 3
  local top="$target"
  if [ "$mode" = run ]; then
    top="$run/merged"
    mkdir -p "$run/upper" "$run/work" "$top"
    mount -t overlay overlay -o "lowerdir=$target,upperdir=$run/upper,workdir=$run/work" "$top"
    mkdir -p "$top/src"
    mount --bind "$CLONE" "$top/src"
    # pip inside (making the venv) trusts what the host trusts, and reuses the host's
    # downloads when it has them.
    if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
      mount --bind -o ro /etc/ssl/certs/ca-certificates.crt "$top/etc/ssl/certs/ca-certificates.crt"
    fi
    if [ -d /root/.cache/pip ]; then
      mkdir -p "$top/root/.cache/pip"
      mount --bind /root/.cache/pip "$top/root/.cache/pip"
    fi
  fi
  mount -t proc proc "$top/proc"
  mount --rbind /dev "$top/dev"
  mount -t tmpfs -o mode=1777,nosuid,nodev shm "$top/dev/shm"  # PostgreSQL's, not the host's
  mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$top/sys"
  mount --bind -o ro /etc/resolv.conf "$top/etc/resolv.conf"
  local env=(HOME=/root LANG=C.UTF-8
    "PATH=/src/$VENV/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
  local name
  for name in "${PASS_ENV[@]}"; do
    [ -n "${!name:-}" ] && env+=("$name=${!name}")
  done
  local cwd=/
  [ "$mode" = run ] && cwd=/src
  # Not exec: this shell stays the namespace's first process, waits, and on its exit the
  # kernel kills whatever the command left behind.
  set +e
  chroot "$top" /usr/bin/env -i "${env[@]}" /bin/sh -c 'cd "$0" && exec "$@"' "$cwd" "$@"
  local status=$?
  exit "$status"
}

enter() {
  local mode="$1" target="$2" run="$3"
  shift 3
  unshare --mount --pid --fork --kill-child --propagation private -- \
    bash "${BASH_SOURCE[0]}" __inside "$mode" "$target" "$run" "$@"
}

ensure_root() {
  if [ -d "$ROOT" ]; then
    say "using $ROOT"
    return 0
  fi
  if [ -n "${REDMICA_DEBIAN13_ROOT:-}" ]; then
    say "REDMICA_DEBIAN13_ROOT=$ROOT is not a directory"
    exit 2
  fi
  mkdir -p "$CACHE"
  exec 9>"$ROOT.lock"
  flock 9
  [ -d "$ROOT" ] || build
  exec 9>&-
}

# -- commands -------------------------------------------------------------------------------------
RUN_DIR=""
finish() {
  [ -n "$RUN_DIR" ] || return 0
  if [ -n "${E2E_KEEP:-}${BENCH_KEEP:-}" ]; then
    say "kept this run's changes to the root in $RUN_DIR/upper (its /tmp is $RUN_DIR/upper/tmp)"
  else
    rm -rf "$RUN_DIR"
  fi
}

run_inside() {
  # On disk by default (/var/tmp): a run's databases and logs can be large for a tmpfs.
  RUN_DIR="$(mktemp -d "${TMPDIR:-/var/tmp}/redmica-debian13-run.XXXXXX")"
  trap finish EXIT
  # The clone's own venv for inside (Python 3.13), remade when what it installs changes.
  local stamp="$CLONE/$VENV/.installed"
  if [ ! -f "$stamp" ] || [ "$CLONE/pyproject.toml" -nt "$stamp" ] \
      || [ "$CLONE/scripts/bootstrap.sh" -nt "$stamp" ]; then
    enter run "$ROOT" "$RUN_DIR" /bin/sh -c "bash scripts/bootstrap.sh $VENV && touch $VENV/.installed"
  fi
  local status=0
  enter run "$ROOT" "$RUN_DIR" "$@" || status=$?
  return "$status"
}

case "${1:-}" in
  __inside)
    shift
    inside "$@"
    ;;
  where)
    echo "$ROOT"
    ;;
  path)
    usable || { say "needs root on a machine with apt-get, unshare and chroot"; exit 1; }
    ensure_root
    echo "$ROOT"
    ;;
  run)
    shift
    [ "$#" -gt 0 ] || { say "usage: $0 run COMMAND [ARG...]"; exit 2; }
    if ! usable; then
      say "skipped: needs root on a machine with apt-get, unshare and chroot"
      echo "debian13 root: 0 passed, 0 failed, 1 skipped"
      exit 0
    fi
    ensure_root
    run_inside "$@"
    ;;
  clean)
    rm -rf "$CACHE"/debian13-*
    say "removed the cached roots in $CACHE"
    ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
