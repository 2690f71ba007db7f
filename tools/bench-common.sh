# Sourced by tools/bench-iso, tools/bench-usb, tools/bench-iso-cramfs and tools/bench-scale
# (after `cd` to the repository) with BENCH_NAME and RUNS set: parses `--runs N`, installs what
# is needed, builds the release CLI ($BM), makes the big demo root ($SRC) and a private copy of
# it in a work directory $W (under $BENCH_DIR, default /var/tmp; its file system type in
# $FSTYPE), removed on exit. Then the script lists its commands with bench_add and times them
# with bench_run (tools/bench.py).
[ "${1:-}" = "--runs" ] && RUNS=$2
tools/setup
SCRATCH=()
[ -n "${BENCH_SCRATCH:-}" ] && SCRATCH=(--scratch-path "$BENCH_SCRATCH")
swift build -c release "${SCRATCH[@]}" --product bootmedium >&2
BM=$(swift build -c release "${SCRATCH[@]}" --show-bin-path)/bootmedium
SRC=$(tools/demo-root --big | tail -n 1)
W=$(mktemp -d "${BENCH_DIR:-/var/tmp}/$BENCH_NAME.XXXXXX")
trap 'rm -rf "$W"' EXIT
FSTYPE=$(findmnt -n -o FSTYPE -T "$W")
# bench_copy_root SRC DEST [--link]: a private copy of the PLC root SRC at DEST. Copied, not
# hard-linked: a medium template's key covers its tree files' change times (docs/templates.md),
# and every new link to a file moves them, so a tree sharing the cache's inodes would see its
# templates rebuilt in the middle of the rounds whenever another benchmark or test links the
# cached root. --link: hard links (where DEST shares SRC's file system), for a second root over
# a private copy made by this script before any request; the node store is always a copy (key
# renewals rewrite it).
bench_copy_root() {
  if [ "${3:-}" = --link ] && cp -al "$1" "$2" 2>/dev/null; then
    rm "$2/nodes.json" && cp "$1/nodes.json" "$2/nodes.json"
  else
    rm -rf "$2"
    cp -a "$1" "$2"
  fi
}
bench_copy_root "$SRC" "$W/root"

# bench_add NAME CLAUSE... : one command of the table, in tools/bench.py's clauses, given as
# argv words (`prepare ARGV... ";" run ARGV... ";" run ARGV...`), never as shell text.
SPEC=()
bench_add() {
  SPEC+=(name "$1" ";")
  shift
  SPEC+=("$@" ";")
}
# bench_run: every command added, interleaved over $RUNS rounds, into $W/times.json; the load
# average before and after in LOAD_BEFORE and LOAD_AFTER.
bench_run() {
  LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
  ${BENCH_NICE:+nice -n "$BENCH_NICE"} python3 tools/bench.py run "$RUNS" "$W/times.json" "${SPEC[@]}"
  LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
}
# mib FILE: its size in MiB, one decimal
mib() { awk -v s="$(stat -c %s "$1")" 'BEGIN { printf "%.1f", s / 1048576 }'; }
# bench_table WHAT [bench.py table options]: the markdown table, under a line that says what
# was measured and how.
bench_table() {
  local what=$1
  shift
  python3 tools/bench.py table "$W/times.json" "$@" --title "$what; $RUNS interleaved rounds, warm cache, $FSTYPE filesystem, nice ${BENCH_NICE:-0}, ${BENCH_HOGS:-0} busy loops beside; load average $LOAD_BEFORE before, $LOAD_AFTER after"
}
