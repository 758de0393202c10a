# Helpers for scripts/demo.sh: how each step and command is announced on stderr.
# Bold only on a terminal and without NO_COLOR (https://no-color.org): a log file gets plain text.
if [ -t 2 ] && [ -z "${NO_COLOR:-}" ] && [ "${TERM:-}" != "dumb" ]; then
  demo_bold=$'\033[1m' demo_plain=$'\033[0m'
else
  demo_bold='' demo_plain=''
fi
step() { printf '\n%s== %s%s\n' "$demo_bold" "$*" "$demo_plain" >&2; }
show() { printf '$ %s\n' "$*" >&2; }
run() { show "$*"; "$@"; }
