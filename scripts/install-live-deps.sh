#!/usr/bin/env bash
# Installs the Debian packages the live tests use (Apache + Passenger, tmux), when missing.
# Without root (and no sudo) it only warns: the live tests then skip, saying why.
set -euo pipefail
# tmux and vi: the terminal-driven test of interactive flows (tests/test_tmux.py).
# PostgreSQL's server and openssl: the lifecycle's security tests run a private TLS cluster
# (tests/live/test_lifecycle_security.py); no cluster of the package's own is used.
packages=(apache2 libapache2-mod-passenger tmux vim-tiny postgresql openssl)

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-live-deps: no apt-get here; live Apache tests will be skipped" >&2; exit 0
fi
if [ "$(id -u)" -eq 0 ]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else
  echo "install-live-deps: not root; live Apache tests will be skipped (need: ${missing[*]})" >&2
  exit 0
fi
echo "install-live-deps: installing ${missing[*]}" >&2
"${sudo[@]}" apt-get update -qq
# No service is started for these: the tests run their own Apache and PostgreSQL on private
# ports.
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" >/dev/null
