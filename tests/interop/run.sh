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
    # Anything still running from our root (daemons, shims, conmon, containers) is ours.
    local p c
    for p in /proc/[0-9]*; do
      p=${p#/proc/}
      [ "$p" = $$ ] && continue
      c=$( { tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null) || continue
      case $c in *"$root"*) kill -KILL "$p" 2>/dev/null ;; esac
    done
    # our mounts (podman overlay, containerd snapshots), deepest first
    awk -v r="$root" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo |
      sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
    # our cgroup parent in every hierarchy, deepest first
    awk '$9 == "cgroup" || $9 == "cgroup2" { print $5 }' /proc/self/mountinfo | while read -r mnt; do
      [ -d "$mnt/berth-interop-$tag" ] || continue
      # only containers of this run can be inside our own cgroups
      find "$mnt/berth-interop-$tag" -name freezer.state -exec sh -c 'echo THAWED > "$1"' _ {} \; 2>/dev/null
      find "$mnt/berth-interop-$tag" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u |
        while read -r p; do kill -KILL "$p" 2>/dev/null; done
      sleep 0.2
      find "$mnt/berth-interop-$tag" -depth -type d -exec rmdir {} + 2>/dev/null
      [ -d "$mnt/berth-interop-$tag" ] && echo "interop/run.sh: could not remove $mnt/berth-interop-$tag" >&2
    done
    rm -rf "$root"
  }
  trap teardown EXIT
  trap 'exit 130' INT TERM HUP
  # A snapshot of the binary: a concurrent rebuild must not swap it in the middle of a run.
  if [ -f "$BERTH" ]; then
    mkdir -p "$root/bin"
    cp "$BERTH" "$root/bin/berth"
    echo "interop/run.sh: berth under test: $BERTH (sha256 $(sha256sum <"$BERTH" | cut -c1-16), $(stat -c %y "$BERTH" | cut -d. -f1))" >&2
    export BERTH=$root/bin/berth
  fi
  cd "$repo"
  paths=("$here")
  for a in "$@"; do
    case "$a" in -*) ;; *) [ -e "${a%%::*}" ] && paths=() ;; esac
  done
  # INTEROP_NO_UNSHARE: this namespace is already private; conftest need not unshare again.
  INTEROP_NO_UNSHARE=1 "$INTEROP_PY" -m pytest -q -p no:cacheprovider "${paths[@]}" "$@"
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
