# Sourced by tools/bench-iso and tools/bench-usb (after `cd` to the repository) with
# BENCH_NAME and RUNS set: parses `--runs N`, installs what is needed, builds the release CLI
# ($BM), makes the big demo root and a private copy of it in a work directory $W (under
# $BENCH_DIR, default /var/tmp; its file system type in $FSTYPE), removed on exit.
[ "${1:-}" = "--runs" ] && RUNS=$2
tools/setup
SCRATCH=()
[ -n "${BENCH_SCRATCH:-}" ] && SCRATCH=(--scratch-path "$BENCH_SCRATCH")
swift build -c release "${SCRATCH[@]}" --product bootmedium >&2
BM=$(swift build -c release "${SCRATCH[@]}" --show-bin-path)/bootmedium
SRC=$(tools/demo-root --big | tail -n 1)
W=$(mktemp -d "${BENCH_DIR:-/var/tmp}/$BENCH_NAME.XXXXXX")
FSTYPE=$(findmnt -n -o FSTYPE -T "$W")
trap 'rm -rf "$W"' EXIT
# Hard links where the work directory shares the cache's file system, copies elsewhere; the
# node store is always a copy (key renewals rewrite it).
{ cp -al "$SRC" "$W/root" 2>/dev/null || { rm -rf "$W/root"; cp -a "$SRC" "$W/root"; }; }
rm "$W/root/nodes.json" && cp "$SRC/nodes.json" "$W/root/nodes.json"
