#!/bin/sh
# Build step: turn TLS certificate verification back on for the redmica_s3 plugin.
# The plugin sets `Aws.config[:ssl_verify_peer] = false` when its connection file loads, which
# switches verification off for every AWS client in the Ruby process. Removing that one line
# leaves the SDK's default (verify). If the line is not there exactly once, the plugin changed:
# stop the build so a person reads the new code instead of shipping an unknown state.
# Usage: redmica_s3-verify-tls.sh PLUGIN_DIR
set -eu
file="$1/lib/redmica_s3/connection.rb"
line='Aws.config[:ssl_verify_peer] = false'
count="$(grep -cxF "$line" "$file" || true)"
if [ "$count" != 1 ]; then
  echo "redmica_s3-verify-tls: expected the line '$line' once in $file, found it $count time(s)" >&2
  exit 1
fi
grep -vxF "$line" "$file" > "$file.new"
mv "$file.new" "$file"
if grep -n 'ssl_verify_peer' "$file" >&2; then
  echo "redmica_s3-verify-tls: $file still touches ssl_verify_peer" >&2
  exit 1
fi
