#!/bin/sh
# Build step: put one git commit of a repository into DIR and prove it is that commit.
# The pin is the commit id, not a tag (a tag can be moved) nor a tarball checksum (nobody can
# check one without downloading the tarball first). A commit id is the hash of the whole tree:
# git checks every object it receives against its id (transfer.fsckObjects also checks each
# object's form), and the script stops unless HEAD is exactly the commit asked for.
# Usage: fetch-commit.sh URL COMMIT DIR   (DIR is created or must be empty; .git is removed)
set -eu

fail() {
  echo "fetch-commit: $*" >&2
  exit 1
}

[ $# -eq 3 ] || fail "usage: fetch-commit.sh URL COMMIT DIR"
url=$1
commit=$2
dir=$3
case $commit in
  *[!0-9a-f]*) fail "COMMIT must be a full commit id (40 lowercase hex digits), got '$commit'" ;;
esac
[ ${#commit} -eq 40 ] || fail "COMMIT must be a full commit id (40 lowercase hex digits), got '$commit'"
mkdir -p "$dir"
[ -z "$(ls -A "$dir")" ] || fail "$dir is not empty"

cd "$dir"
git init -q .
git -c transfer.fsckObjects=true fetch -q --depth 1 "$url" "$commit" ||
  fail "could not fetch commit $commit from $url"
git -c advice.detachedHead=false checkout -q FETCH_HEAD
head=$(git rev-parse HEAD)
[ "$head" = "$commit" ] || fail "$url gave commit $head, expected $commit"
rm -rf .git
echo "fetch-commit: $url at $commit" >&2
