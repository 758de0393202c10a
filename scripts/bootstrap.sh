#!/usr/bin/env bash
# Creates the project's virtualenv with everything `make demo` and `make test` need.
# On a fresh Debian machine this also installs python3-venv when it is missing.
set -euo pipefail
venv="${1:-.venv}"
cd "$(dirname "$0")/.."

find_python() {
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  return 1
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "bootstrap: need root to run: $*" >&2; return 1; fi
}

python="$(find_python || true)"
if [ -z "$python" ]; then
  echo "bootstrap: no Python >= 3.11 found; installing Debian's python3" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv
  python="$(find_python)" || { echo "bootstrap: Python >= 3.11 is required" >&2; exit 1; }
fi

# pip is chatty (and a machine's pip.conf can add a hundred warnings): keep its output in a
# log and show it only when a step fails.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
quietly() {
  if ! "$@" >>"$log" 2>&1; then
    cat "$log" >&2
    echo "bootstrap: failed: $* (its output is above)" >&2
    exit 1
  fi
}
if [ ! -x "$venv/bin/python" ]; then
  # Debian splits venv/ensurepip into python3-venv; detect it by trying.
  probe="$(mktemp -d)"
  if ! "$python" -m venv "$probe/v" >/dev/null 2>&1; then
    echo "bootstrap: $python cannot create virtualenvs; installing python3-venv" >&2
    as_root apt-get update -qq
    version="$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv \
      "python${version}-venv" || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
  fi
  rm -rf "$probe"
  quietly "$python" -m venv "$venv"
fi
quietly "$venv/bin/python" -m pip install --quiet --upgrade pip
quietly "$venv/bin/python" -m pip install --quiet -e '.[dev]'
echo "bootstrap: $venv ready ($("$venv/bin/python" --version))" >&2
