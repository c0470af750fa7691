#!/bin/bash
# berthd's stream server vs containerd 1.6's (CRI plugin, runc): Exec and PortForward over
# SPDY/3.1 with the same Go client (tests/cri/spdy_client, on Debian's spdystream) —
# exec latency and output throughput, port-forward request latency and throughput, the
# daemon's memory and threads before and after streaming.
#
#   sudo bench/cri-stream.sh [--samples N] [--max-load L] [--out results.json] [--keep-tmp]
#
# Needs root, containerd, runc, docker-registry, containernetworking-plugins (portmap),
# python3-grpcio, python3-websocket, protobuf-compiler(-grpc), busybox-static, golang-go
# and golang-github-docker-spdystream-dev; installs what is missing. Uses the berthd build in
# build/ (copied at start; not built here). Both daemons run side by side in one private
# mount namespace.
set -eu
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "cri-stream.sh: must run as root" >&2; exit 2; }

if [ "${CRI_STREAM_IN_NS:-}" != 1 ]; then
  missing=()
  command -v containerd >/dev/null || missing+=(containerd)
  command -v runc >/dev/null || missing+=(runc)
  [ -x /usr/bin/docker-registry ] || missing+=(docker-registry)
  [ -x /usr/lib/cni/portmap ] || missing+=(containernetworking-plugins)
  /usr/bin/python3 -c 'import grpc, google.protobuf' 2>/dev/null || missing+=(python3-grpcio python3-protobuf)
  /usr/bin/python3 -c 'import websocket' 2>/dev/null || missing+=(python3-websocket)  # tests/lib/stream_clients.py
  command -v protoc >/dev/null || missing+=(protobuf-compiler)
  [ -x /usr/bin/grpc_python_plugin ] || missing+=(protobuf-compiler-grpc)
  [ -x /bin/busybox ] || missing+=(busybox-static)
  command -v go >/dev/null || missing+=(golang-go)
  [ -d /usr/share/gocode/src/github.com/docker/spdystream ] || missing+=(golang-github-docker-spdystream-dev)
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq >/dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  CRI_STREAM_IN_NS=1 exec unshare -m --propagation private -- "$0" "$@"
fi
exec /usr/bin/python3 "$here/cri_stream.py" "$@"
