#!/bin/bash
# berthd vs containerd 1.6 (CRI plugin, runc): the RuntimeService calls critest's
# benchmarks time, the kubelet's relist (ListPodSandbox + ListContainers with 100
# containers), node-side memory with 10 pods and 10 containers, idle CPU.
#
#   sudo bench/cri-runtime.sh [--samples N] [--rounds R] [--out results.json] [--keep-tmp]
#
# Needs root, containerd, runc, docker-registry, containernetworking-plugins (portmap),
# python3-grpcio, protobuf-compiler(-grpc) and busybox-static; installs what is missing.
# Both daemons run side by side in one private mount namespace.
set -eu
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "cri-runtime.sh: must run as root" >&2; exit 2; }

if [ "${CRI_RUNTIME_IN_NS:-}" != 1 ]; then
  missing=()
  command -v containerd >/dev/null || missing+=(containerd)
  command -v runc >/dev/null || missing+=(runc)
  [ -x /usr/bin/docker-registry ] || missing+=(docker-registry)
  [ -x /usr/lib/cni/portmap ] || missing+=(containernetworking-plugins)
  /usr/bin/python3 -c 'import grpc, google.protobuf' 2>/dev/null || missing+=(python3-grpcio python3-protobuf)
  command -v protoc >/dev/null || missing+=(protobuf-compiler)
  [ -x /usr/bin/grpc_python_plugin ] || missing+=(protobuf-compiler-grpc)
  [ -x /bin/busybox ] || missing+=(busybox-static)
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq >/dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  [ -x "$repo/build/cri/berthd" ] || "$repo/scripts/build.sh" >/dev/null
  CRI_RUNTIME_IN_NS=1 exec unshare -m --propagation private -- "$0" "$@"
fi
# bench/metrics-scrape.sh runs its own script with the same set-up.
exec /usr/bin/python3 "$here/${CRI_BENCH_SCRIPT:-cri_runtime.py}" "$@"
