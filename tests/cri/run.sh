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
. "$repo/tests/lib/suite.sh"

if [ "$(id -u)" != 0 ]; then
  echo "cri/run.sh: must run as root" >&2
  exit 2
fi

if [ "${CRI_IN_NS:-}" = 1 ]; then
  root=$(mktemp -d /tmp/berth-cri-run.XXXXXX)
  # Every temp dir of the run (registries, stubs, daemons) lives under $root.
  export CRI_TEST_ROOT=$root TMPDIR=$root
  teardown() {
    # berthd, registries, shims and containers started by this run have $root (or the
    # /run/bc* state dirs of its berthds) on their command line, or live in its cgroups.
    suite_kill_procs_mentioning "$root"
    suite_remove_cgroup "berth-cri-test-$CRI_TAG" cri/run.sh
    suite_umount_under "$root"
    for d in /run/bt"$CRI_TAG"_*; do [ -d "$d" ] && suite_umount_under "$d" && rm -rf "$d"; done
    rm -rf "$root"
  }
  trap teardown EXIT
  trap 'exit 130' INT TERM HUP
  export CRI_TAG=$$
  BERTHD=$(suite_snapshot_binary "$BERTHD" "$root" cri/run.sh)
  BERTH=$(suite_snapshot_binary "$repo/build/runtime/berth" "$root" cri/run.sh)
  BERTH_SHIM=$(suite_snapshot_binary "$repo/build/shim/berth-shim" "$root" cri/run.sh)
  BERTH_PAUSE=$(suite_snapshot_binary "$repo/build/cri/pause/berth-pause" "$root" cri/run.sh)
  BERTH_BRIDGE=$(suite_snapshot_binary "$repo/build/cni/berth-bridge" "$root" cri/run.sh)
  BERTHCTL=$(suite_snapshot_binary "$repo/build/ctl/berthctl" "$root" cri/run.sh)
  export BERTHD BERTH BERTH_SHIM BERTH_PAUSE BERTH_BRIDGE BERTHCTL
  cd "$repo"
  suite_pytest_paths "$here" "$@"
  "$PY" -m pytest -q -p no:cacheprovider "${SUITE_PATHS[@]}" "$@"
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
# test_registry_config.py: containerd's ctr and podman check the files berthd reads
command -v ctr >/dev/null || missing+=(containerd)
command -v podman >/dev/null || missing+=(podman)
[ -x /bin/busybox ] || missing+=(busybox-static)
# Real clients of the stream server: Go's spdystream (built into tests/cri/spdy_client at
# test time) and Python's websocket-client.
command -v go >/dev/null || missing+=(golang-go)
[ -d /usr/share/gocode/src/github.com/docker/spdystream ] || missing+=(golang-github-docker-spdystream-dev)
"$PY" -c 'import websocket' 2>/dev/null || missing+=(python3-websocket)
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
