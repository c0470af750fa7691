#!/bin/bash
# Scrape time of berthd's /metrics with 100 running pods, vs containerd 1.6's /v1/metrics
# with the same pods (median, p99 over 1000 scrapes of berthd, 30 of containerd, whose
# scrape takes about a second; target: berthd < 1 ms).
#
#   sudo bench/metrics-scrape.sh [--pods N] [--scrapes N] [--peer-scrapes N] [--daemons berthd,containerd] [--out F]
#
# Needs what bench/cri-runtime.sh needs (containerd, runc, docker-registry, CNI plugins,
# python3-grpcio, protoc + grpc plugin, busybox-static); installs what is missing. Both
# daemons run side by side in one private mount namespace.
set -eu
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "metrics-scrape.sh: must run as root" >&2; exit 2; }

if [ "${METRICS_SCRAPE_IN_NS:-}" != 1 ]; then
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
  METRICS_SCRAPE_IN_NS=1 exec unshare -m --propagation private -- "$0" "$@"
fi
exec /usr/bin/python3 "$here/metrics_scrape.py" "$@"
