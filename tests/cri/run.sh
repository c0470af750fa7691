#!/bin/bash
# berthd's suite: the daemon (Version, UNIMPLEMENTED, config, socket, sd_notify, SIGTERM)
# and its ImageService end to end against Debian's docker-registry on 127.0.0.1, with
# images built from busybox-static at test time (tests/lib/oci_image.py).
#
#   tests/cri/run.sh [pytest args...]            e.g. -k auth, -x, --junitxml=out.xml
#   BERTHD=/path/to/berthd tests/cri/run.sh      (default: build/cri/berthd, built if missing)
#
# Installs what is missing with apt-get, runs inside a private mount namespace (the
# overlay snapshotter's mounts never reach the host) under one temp root, removes it at
# the end. Only processes this run started are ever signalled.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
PY=/usr/bin/python3

if [ "$(id -u)" != 0 ]; then
  echo "cri/run.sh: must run as root" >&2
  exit 2
fi

if [ "${CRI_IN_NS:-}" = 1 ]; then
  root=$(mktemp -d /tmp/berth-cri-run.XXXXXX)
  # Every temp dir of the run (registries, stubs, daemons) lives under $root.
  export CRI_TEST_ROOT=$root TMPDIR=$root
  teardown() {
    # berthd and registries started by this run have $root on their command line.
    local p c
    for p in /proc/[0-9]*; do
      p=${p#/proc/}
      [ "$p" = $$ ] && continue
      c=$( { tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null) || continue
      case $c in *"$root"*) kill -KILL "$p" 2>/dev/null ;; esac
    done
    awk -v r="$root" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo |
      sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
    rm -rf "$root"
  }
  trap teardown EXIT
  trap 'exit 130' INT TERM HUP
  # A snapshot of the binary: a concurrent rebuild must not swap it mid-run.
  mkdir -p "$root/bin"
  cp "$BERTHD" "$root/bin/berthd"
  echo "cri/run.sh: berthd under test: $BERTHD (sha256 $(sha256sum <"$BERTHD" | cut -c1-16))" >&2
  export BERTHD=$root/bin/berthd
  cd "$repo"
  paths=("$here")
  for a in "$@"; do
    case "$a" in -*) ;; *) [ -e "${a%%::*}" ] && paths=() ;; esac
  done
  "$PY" -m pytest -q -p no:cacheprovider "${paths[@]}" "$@"
  exit $?
fi

missing=()
"$PY" -c 'import pytest' 2>/dev/null || missing+=(python3-pytest)
"$PY" -c 'import grpc, google.protobuf' 2>/dev/null || missing+=(python3-grpcio python3-protobuf)
command -v protoc >/dev/null || missing+=(protobuf-compiler)
[ -x /usr/bin/grpc_python_plugin ] || missing+=(protobuf-compiler-grpc)
[ -x /usr/bin/docker-registry ] || missing+=(docker-registry)
command -v htpasswd >/dev/null || missing+=(apache2-utils)
command -v openssl >/dev/null || missing+=(openssl)
[ -x /bin/busybox ] || missing+=(busybox-static)
if [ ${#missing[@]} -gt 0 ]; then
  echo "cri/run.sh: installing ${missing[*]}" >&2
  apt-get update -qq >/dev/null 2>&1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null ||
    { echo "cri/run.sh: cannot install ${missing[*]}" >&2; exit 2; }
fi

if [ -z "${BERTHD:-}" ]; then
  BERTHD=$repo/build/cri/berthd
  if [ ! -x "$BERTHD" ]; then
    echo "cri/run.sh: building berthd (scripts/build.sh)" >&2
    "$repo/scripts/build.sh" >/dev/null || { echo "cri/run.sh: build failed" >&2; exit 1; }
  fi
fi
[ -x "$BERTHD" ] || { echo "cri/run.sh: no berthd at $BERTHD" >&2; exit 2; }
export BERTHD

CRI_IN_NS=1 exec unshare -m --propagation private -- "$0" "$@"
