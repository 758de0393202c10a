#!/usr/bin/env bash
# Builds the admin broker's Lambda code (docs/infrastructure.md, "The admin broker's code"):
# this checkout's package and its dependencies as a zip for Lambda's python3.12 runtime on
# x86_64: the image's pins (docker/requirements.lock, checked by hash) from PyPI's manylinux
# wheels, nothing compiled here, so any Linux with pip and PyPI access can build it.
#
#   scripts/build-broker-zip.sh [OUT_DIR]      (make broker-zip)
#
# Prints the zip's path, then the S3 key to upload it under: admin-broker/<version>-<hash>.zip,
# the first 12 hex digits of the zip's SHA-256. The zip is reproducible (sorted entries, fixed
# times and modes), so the same checkout gives the same key, and any change gives a new key:
# CloudFormation updates the function only when BrokerCodeKey changes.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-build}"
python="${PYTHON:-.venv/bin/python}"
[ -x "$python" ] || python=python3

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
log="$work/pip.log"
quietly() {
  if ! "$@" >>"$log" 2>&1; then
    cat "$log" >&2
    echo "build-broker-zip: failed: $* (its output is above)" >&2
    exit 1
  fi
}

quietly "$python" -m pip wheel --no-deps --wheel-dir "$work/wheel" .
lambda_platform=(--platform manylinux2014_x86_64 --implementation cp --python-version 3.12
  --only-binary=:all:)
quietly "$python" -m pip install --target "$work/pkg" "${lambda_platform[@]}" \
  --require-hashes -r docker/requirements.lock
quietly "$python" -m pip install --target "$work/pkg" "${lambda_platform[@]}" --no-deps \
  "$work"/wheel/*.whl

mkdir -p "$out"
"$python" - "$work/pkg" "$out" <<'PY'
import hashlib
import re
import sys
import zipfile
from pathlib import Path

root, out = Path(sys.argv[1]), Path(sys.argv[2])
init = (root / "redmica_ops" / "__init__.py").read_text()
version = re.search(r'__version__ = "([^"]+)"', init).group(1)
files = sorted(
    p for p in root.rglob("*")
    if p.is_file() and "__pycache__" not in p.parts
    # pip records the temporary path of the wheel it installed: not reproducible, not needed.
    and p.name != "direct_url.json"
)
target = out / "admin-broker.zip"
with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
    for path in files:
        info = zipfile.ZipInfo(path.relative_to(root).as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        data = path.read_bytes()
        if path.name == "RECORD":
            data = b"".join(
                line for line in data.splitlines(keepends=True) if b"direct_url.json" not in line
            )
        archive.writestr(info, data)
digest = hashlib.sha256(target.read_bytes()).hexdigest()[:12]
final = out / f"admin-broker-{version}-{digest}.zip"
target.replace(final)
print(final)
print(f"admin-broker/{final.name}")
PY
