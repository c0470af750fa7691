#!/bin/bash
# Berth's CNI suite (pytest, tests/cni), in a private mount namespace.
#
#   tests/cni/run.sh [pytest args...]            e.g. -k gc --junitxml=cni.xml
#   BERTH_CNI_BUILD=/work/build-cni/cni tests/cni/run.sh
#
# BERTH_CNI_BUILD: directory holding berth-cni and berth-bridge (default build/cni).
# Needs root, python3-pytest, containernetworking-plugins, iproute2, iptables, nftables,
# busybox-static and util-linux (installed with apt-get when missing). Every test works
# in network namespaces it creates and removes; the host's interfaces are not touched.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
export BERTH_CNI_BUILD=${BERTH_CNI_BUILD:-$repo/build/cni}

if [ "$(id -u)" != 0 ]; then
  echo "tests/cni/run.sh: must run as root" >&2
  exit 2
fi
PY=/usr/bin/python3
need=()
"$PY" -c 'import pytest' >/dev/null 2>&1 || need+=(python3-pytest)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v ip >/dev/null || need+=(iproute2)
command -v iptables >/dev/null || need+=(iptables)
command -v nft >/dev/null || need+=(nftables)
command -v nsenter >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  echo "tests/cni/run.sh: installing ${need[*]}" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}") >&2 || {
    echo "tests/cni/run.sh: cannot install ${need[*]}" >&2; exit 2; }
fi
# Test paths given relative to the caller's directory still work after the cd below.
paths=("$here")
args=()
for a in "$@"; do
  case "$a" in
    -*) args+=("$a") ;;
    *) if [ -e "${a%%::*}" ]; then paths=(); args+=("$(realpath "${a%%::*}")${a#"${a%%::*}"}"); else args+=("$a"); fi ;;
  esac
done
cd "$here"
exec unshare -m --propagation private -- "$PY" -m pytest -q -p no:cacheprovider "${paths[@]}" "${args[@]}"
