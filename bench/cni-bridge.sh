#!/bin/bash
# cni-bridge.sh - berth-bridge against the reference bridge + host-local CNI plugins:
# ADD and DEL latency (wall, CPU, peak RSS) and 100 pods attached then detached.
#
#   sudo bench/cni-bridge.sh [--berth-bridge PATH] [--runs 50] [--pods 100] [--out f.json] [--help]
#
# Runs bench/cni_bridge.py as root in a private mount namespace; everything happens in
# network namespaces it creates and removes. Needs containernetworking-plugins and
# iproute2 (installed with apt-get when missing).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
PY=/usr/bin/python3

if [ "${1:-}" = "--__inner" ]; then
  shift
  exec "$PY" "$here/cni_bridge.py" "$@"
fi
for a in "$@"; do
  case $a in -h|--help) exec "$PY" "$here/cni_bridge.py" --help ;; esac
done
if [ "$(id -u)" != 0 ]; then echo "cni-bridge.sh: must run as root" >&2; exit 2; fi
need=()
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
command -v ip >/dev/null || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
  echo "cni-bridge.sh: installing ${need[*]}" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}") >&2
fi
args=("$@")
have_bin=0
for a in "$@"; do [ "$a" = --berth-bridge ] && have_bin=1; done
[ $have_bin = 1 ] || args+=(--berth-bridge "${BERTH_BRIDGE:-$repo/build/cni/berth-bridge}")
exec unshare -m --propagation private -- bash "$here/cni-bridge.sh" --__inner "${args[@]}"
