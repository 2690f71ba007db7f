# Sourced by tools/demo-root and tools/demo-kernel: Debian packages fetched with apt-get
# download (nothing installed on the host) into a cache, and unpacked from there.
# Both scripts hash this file into their cache keys: a change here rebuilds what they cache.
#
#   fetch_deb CACHE PKG VERSION SCRATCH   prints the path of PKG_VERSION's .deb, kept in
#                                         CACHE/debs/PKG/VERSION/; a missing one is downloaded
#                                         into a temp dir under SCRATCH (the caller's, removed
#                                         by its EXIT trap; on CACHE's file system) and moved in
#   deb_unpack DEB DIR [PATTERN...]       unpacks DEB's files into DIR: all of them, or only
#                                         the members matching the tar wildcards PATTERN
#   deb_member DEB MEMBER                 writes one member (e.g. ./usr/src/x.tar.xz) to stdout
# Each returns non-zero on failure (fetch_deb with a message on stderr); the callers die then.

fetch_deb() {
  local cache=$1 pkg=$2 ver=$3 scratch=$4 d deb dl
  d="$cache/debs/$pkg/$ver"
  deb="$(ls "$d"/*.deb 2>/dev/null | head -n1 || true)"
  if [ -z "$deb" ]; then
    echo "${0##*/}: apt-get download $pkg=$ver" >&2
    dl="$(mktemp -d "$scratch/dl.XXXXXX")"
    if ! (cd "$dl" && apt-get download -q "$pkg=$ver" 2>&1 | grep -v 'unsandboxed as root' >&2; exit "${PIPESTATUS[0]}"); then
      echo "${0##*/}: apt-get download $pkg=$ver failed" >&2
      return 1
    fi
    mkdir -p "$d" && mv "$dl"/*.deb "$d"/ && rmdir "$dl" || return 1
    deb="$(ls "$d"/*.deb | head -n1)"
  fi
  echo "$deb"
}

deb_unpack() {
  local deb=$1 dir=$2
  shift 2
  mkdir -p "$dir" || return 1
  if [ $# -eq 0 ]; then
    dpkg-deb -x "$deb" "$dir"
  else
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$dir" --wildcards "$@"
  fi
}

deb_member() {
  dpkg-deb --fsys-tarfile "$1" | tar -xO "$2"
}
