#!/bin/bash
# berthlet's end-to-end suite against containerd 1.6's CRI plugin.
#
#   tests/agent/run.sh [pytest args...]        e.g. -k crash, -x, --junitxml=out.xml
#   BERTHLET=/path/to/berthlet tests/agent/run.sh
#
# Installs what is missing (containerd, containernetworking-plugins, docker-registry,
# python3-pytest/-grpcio/-protobuf/-yaml, busybox-static, protobuf-compiler-grpc,
# etcd-server, etcd-client). Everything
# lives under one temp root, one cgroup root (/berthlet-test-<tag>) and one bridge
# (bt-agent<tag>), inside a private mount namespace; all are removed at the end. Only
# processes started by this run are ever signalled.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$repo/tests/lib/suite.sh"

if [ "$(id -u)" != 0 ]; then
  echo "agent/run.sh: must run as root" >&2
  exit 2
fi

# ---- inside the private mount namespace: set up, run pytest, tear down -------------------
if [ "${AGENT_IN_NS:-}" = 1 ]; then
  root=$(mktemp -d /tmp/berthlet-e2e.XXXXXX)
  tag=$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')
  export AGENT_ROOT=$root AGENT_TAG=$tag AGENT_BRIDGE=bt-agent${tag:0:4} AGENT_CGROUP_ROOT=/berthlet-test-$tag
  netns_before=$(ls /var/run/netns 2>/dev/null | sort)
  teardown() {
    # Anything still running from our root (containerd, shims, registry, berthlet) is ours;
    # containers of this run can only be in our own cgroup root.
    suite_kill_procs_mentioning "$root"
    suite_remove_cgroup "berthlet-test-$tag" agent/run.sh
    suite_umount_under "$root"
    # network namespaces containerd made for our pods, and our bridge
    for n in $(ls /var/run/netns 2>/dev/null | sort | comm -13 <(echo "$netns_before") -); do
      case $n in cni-*) umount -l "/var/run/netns/$n" 2>/dev/null; rm -f "/var/run/netns/$n" ;; esac
    done
    ip link del "$AGENT_BRIDGE" 2>/dev/null
    # berthd's state dir (short, in /run: its shims' sockets live there)
    suite_umount_under "/run/bta${tag:0:6}"
    rm -rf "/run/bta${tag:0:6}" "$root"
  }
  trap teardown EXIT
  trap 'exit 130' INT TERM HUP
  BERTHLET=$(suite_snapshot_binary "$BERTHLET" "$root" agent/run.sh)
  # berthd and the programs it runs (the suite is parametrized over containerd and berthd)
  BERTHD=$(suite_snapshot_binary "$repo/build/cri/berthd" "$root" agent/run.sh)
  BERTH=$(suite_snapshot_binary "$repo/build/runtime/berth" "$root" agent/run.sh)
  BERTH_SHIM=$(suite_snapshot_binary "$repo/build/shim/berth-shim" "$root" agent/run.sh)
  BERTH_PAUSE=$(suite_snapshot_binary "$repo/build/cri/pause/berth-pause" "$root" agent/run.sh)
  BERTHCTL=$(suite_snapshot_binary "$repo/build/ctl/berthctl" "$root" agent/run.sh)
  export BERTHLET BERTHD BERTH BERTH_SHIM BERTH_PAUSE BERTHCTL
  cd "$repo"
  suite_pytest_paths "$here" "$@"
  # bench/berthlet.sh runs its benchmark in this same world (AGENT_COMMAND).
  if [ -n "${AGENT_COMMAND:-}" ]; then
    PYTHONPATH=$here /usr/bin/python3 $AGENT_COMMAND "$@"
    exit $?
  fi
  /usr/bin/python3 -m pytest -q -p no:cacheprovider "${SUITE_PATHS[@]}" "$@"
  exit $?
fi

# ---- outside: install what is missing, build berthlet if needed, enter the namespace -------
updated=0
apt_install() {
  if [ $updated = 0 ]; then apt-get update -qq >/dev/null 2>&1; updated=1; fi
  echo "agent/run.sh: installing $*" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 ||
    { echo "agent/run.sh: cannot install $*" >&2; exit 2; }
}
/usr/bin/python3 -c 'import pytest, grpc, google.protobuf, yaml' 2>/dev/null ||
  apt_install python3-pytest python3-grpcio python3-protobuf python3-yaml
[ -x /bin/busybox ] || apt_install busybox-static
command -v containerd >/dev/null && command -v containerd-shim-runc-v2 >/dev/null || apt_install containerd
[ -x /usr/lib/cni/bridge ] || apt_install containernetworking-plugins
[ -x /usr/bin/docker-registry ] || apt_install docker-registry
command -v grpc_python_plugin >/dev/null || apt_install protobuf-compiler-grpc
command -v htpasswd >/dev/null || apt_install apache2-utils
command -v etcd >/dev/null && command -v etcdctl >/dev/null || apt_install etcd-server etcd-client

if [ -z "${BERTHLET:-}" ]; then
  BERTHLET=$repo/build/agent/berthlet
  if [ ! -x "$BERTHLET" ]; then
    echo "agent/run.sh: building berthlet (meson + ninja in $repo/build)" >&2
    { [ -d "$repo/build" ] || meson setup "$repo/build" "$repo"; } >/dev/null &&
      ninja -C "$repo/build" agent/berthlet >/dev/null || { echo "agent/run.sh: build failed" >&2; exit 1; }
  fi
fi
export BERTHLET
exec unshare -m --propagation private -- env AGENT_IN_NS=1 "$0" "$@"
