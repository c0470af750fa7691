#!/bin/bash
# berthd vs containerd 1.6 (CRI plugin): PullImage time of a small and a ~100 MB
# multi-layer image from one local docker-registry, and daemon RSS idle / after pulls.
#
#   sudo bench/cri-pull.sh [--rounds N] [--berthd PATH] [--out results.json] [--keep-tmp]
#
# Needs root (overlay snapshots), containerd, docker-registry, python3-grpcio,
# protobuf-compiler(-grpc) and busybox-static; installs what is missing with apt-get.
# Runs in a private mount namespace so neither daemon's mounts reach the host.
set -eu
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "cri-pull.sh: must run as root" >&2; exit 2; }

if [ "${CRI_PULL_IN_NS:-}" != 1 ]; then
  missing=()
  command -v containerd >/dev/null || missing+=(containerd)
  [ -x /usr/bin/docker-registry ] || missing+=(docker-registry)
  /usr/bin/python3 -c 'import grpc, google.protobuf' 2>/dev/null || missing+=(python3-grpcio python3-protobuf)
  command -v protoc >/dev/null || missing+=(protobuf-compiler)
  [ -x /usr/bin/grpc_python_plugin ] || missing+=(protobuf-compiler-grpc)
  [ -x /bin/busybox ] || missing+=(busybox-static)
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq >/dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if ! printf '%s\n' "$@" | grep -q -- '^--berthd' && [ ! -x "$repo/build/cri/berthd" ]; then
    "$repo/scripts/build.sh" >/dev/null
  fi
  CRI_PULL_IN_NS=1 exec unshare -m --propagation private -- "$0" "$@"
fi
exec /usr/bin/python3 "$here/cri-pull.py" "$@"
