#!/bin/bash
# Berth's interop suite: berth (and runc, the control) driven by containerd 1.6 (ctr),
# podman 4.3 and conmon. Every scenario runs once per runtime.
#
#   tests/interop/run.sh [pytest args...]          e.g. -k podman, -x, -rs
#   BERTH=/path/to/berth tests/interop/run.sh
#   INTEROP_RUNTIMES=berth tests/interop/run.sh    (default: berth,runc)
#
# Installs what is missing with apt-get (containerd; podman + conmon + catatonit; runc;
# busybox-static; python3-pytest). A client that cannot be installed makes its tests SKIP
# (never pass) and the run still exits 0. Everything lives under one temp root and one
# cgroup parent (/berth-interop-<tag>), inside a private mount namespace; both are removed
# at the end. Only processes started by this run are ever signalled.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$repo/tests/lib/suite.sh"

if [ "$(id -u)" != 0 ]; then
  echo "interop/run.sh: must run as root" >&2
  exit 2
fi

# ---- inside the private mount namespace: set up, run pytest, tear down -------------------
if [ "${INTEROP_IN_NS:-}" = 1 ]; then
  root=$(mktemp -d /tmp/berth-interop.XXXXXX)
  tag=$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')
  export INTEROP_ROOT=$root INTEROP_TAG=$tag
  teardown() {
    # Anything still running from our root (daemons, shims, conmon, containers) is ours;
    # then our mounts (podman overlay, containerd snapshots) and our cgroup parent.
    suite_kill_procs_mentioning "$root"
    suite_umount_under "$root"
    suite_remove_cgroup "berth-interop-$tag" interop/run.sh
    rm -rf "$root"
  }
  trap teardown EXIT
  trap 'exit 130' INT TERM HUP
  if [ -f "$BERTH" ]; then
    BERTH=$(suite_snapshot_binary "$BERTH" "$root" interop/run.sh)
    export BERTH
  fi
  cd "$repo"
  suite_pytest_paths "$here" "$@"
  # INTEROP_NO_UNSHARE: this namespace is already private; conftest need not unshare again.
  INTEROP_NO_UNSHARE=1 "$INTEROP_PY" -m pytest -q -p no:cacheprovider "${SUITE_PATHS[@]}" "$@"
  status=$?
  exit $status
fi

# ---- outside: install what is missing, build berth if needed, enter the namespace ---------
pick_python() {
  for py in "${PYTHON:-}" python3 /usr/bin/python3; do
    [ -n "$py" ] || continue
    if "$py" -c 'import pytest' >/dev/null 2>&1; then command -v "$py"; return 0; fi
  done
  return 1
}

updated=0
apt_install() {  # apt_install <what> <pkg>...: best effort, one client at a time
  local what=$1; shift
  if [ $updated = 0 ]; then
    apt-get update -qq >/dev/null 2>&1
    updated=1
  fi
  echo "interop/run.sh: installing $what: $*" >&2
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1; then
    echo "interop/run.sh: cannot install $* ($what tests will be skipped)" >&2
    return 1
  fi
}

pick_python >/dev/null || apt_install pytest python3-pytest
[ -x /bin/busybox ] || apt_install busybox busybox-static
command -v runc >/dev/null || apt_install "runc (control runtime)" runc
{ command -v containerd && command -v ctr && command -v containerd-shim-runc-v2; } >/dev/null ||
  apt_install containerd containerd
{ command -v podman && command -v conmon; } >/dev/null || apt_install podman podman conmon catatonit
[ -x /usr/libexec/podman/catatonit ] || command -v catatonit >/dev/null ||
  apt_install "podman --init" catatonit

PY=$(pick_python) || { echo "interop/run.sh: no python3 with pytest (python3-pytest)" >&2; exit 2; }
[ -x /bin/busybox ] || { echo "interop/run.sh: busybox-static is needed to build the image" >&2; exit 2; }

if [ -z "${BERTH:-}" ] && [ ! -x "$repo/build/runtime/berth" ]; then
  echo "interop/run.sh: building berth (scripts/build.sh)" >&2
  "$repo/scripts/build.sh" >/dev/null || { echo "interop/run.sh: build failed" >&2; exit 1; }
fi
export BERTH=${BERTH:-$repo/build/runtime/berth}
export INTEROP_PY=$PY

if unshare -m --propagation private true 2>/dev/null; then
  INTEROP_IN_NS=1 exec unshare -m --propagation private -- "$0" "$@"
fi
echo "interop/run.sh: unshare -m unavailable; conftest.py enters its own mount namespace" >&2
root=$(mktemp -d /tmp/berth-interop.XXXXXX)
trap 'rm -rf "$root"' EXIT
cd "$repo"
INTEROP_ROOT=$root "$PY" -m pytest -q -p no:cacheprovider "$here" "$@"
