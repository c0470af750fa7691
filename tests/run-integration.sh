#!/bin/bash
# Berth's integration suite (pytest, tests/integration), in a private mount namespace.
#
#   tests/run-integration.sh [pytest args...]
#   RUNTIME=/usr/sbin/runc tests/run-integration.sh -k lifecycle
#
# RUNTIME: the runc-compatible runtime under test (default: build/runtime/berth).
# Needs root, busybox-static and python3-pytest (installed with apt-get when missing).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
export RUNTIME=${RUNTIME:-$repo/build/runtime/berth}

if [ "$(id -u)" != 0 ]; then
  echo "run-integration.sh: must run as root" >&2
  exit 2
fi

pick_python() {
  for py in "${PYTHON:-}" python3 /usr/bin/python3; do
    [ -n "$py" ] || continue
    if "$py" -c 'import pytest' >/dev/null 2>&1; then echo "$py"; return 0; fi
  done
  return 1
}

need_pkgs=()
pick_python >/dev/null || need_pkgs+=(python3-pytest)
[ -x /bin/busybox ] || need_pkgs+=(busybox-static)
command -v ip >/dev/null || need_pkgs+=(iproute2)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "run-integration.sh: installing ${need_pkgs[*]}" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}") >&2 || {
    echo "run-integration.sh: cannot install ${need_pkgs[*]}" >&2; exit 2; }
fi
PY=$(pick_python) || { echo "run-integration.sh: no python with pytest" >&2; exit 2; }

cd "$repo"
# The suite must never leak mounts into the host: run it in its own mount namespace
# with every mount private (conftest.py unshares again as a safety net).
# Default to the whole suite unless a test path was given.
paths=("$here/integration")
for a in "$@"; do
  case "$a" in -*) ;; *) [ -e "${a%%::*}" ] && paths=() ;; esac
done
exec unshare -m --propagation private -- "$PY" -m pytest -q -p no:cacheprovider "${paths[@]}" "$@"
