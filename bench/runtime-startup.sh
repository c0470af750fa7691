#!/bin/bash
# runtime-startup.sh - start-up benchmark of berth against crun and runc, side by side.
#
#   bench/runtime-startup.sh [--runs N] [--runtimes berth,crun,runc] [--berth PATH]
#                            [--out results.json] [--help for all options]
#
# Runs bench/runtime_startup.py (python3, stdlib only) as root inside a private mount
# namespace (unshare -m --propagation private).  On a hybrid cgroup host (cgroup2 mounted at
# /sys/fs/cgroup/unified) an empty file is bind-mounted over
# /sys/fs/cgroup/unified/cgroup.controllers inside that namespace, because crun refuses hybrid
# hosts otherwise; every runtime is measured under the same condition.  The bind mount dies
# with the namespace.  See bench/README.md.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [ "${1:-}" = "--__inner" ]; then
  shift
  cc=/sys/fs/cgroup/unified/cgroup.controllers
  if [ -e "$cc" ] && [ "$(stat -f -c %T /sys/fs/cgroup)" != cgroup2fs ]; then
    empty=$(mktemp /tmp/berth-bench-cc.XXXXXX)
    if mount --bind "$empty" "$cc"; then
      export BERTH_BENCH_CC_HIDDEN=1
    else
      echo "warning: could not hide $cc; crun will refuse this hybrid host" >&2
    fi
    rm -f "$empty"   # the bind mount keeps the (now unlinked) inode
  fi
  exec python3 "$here/runtime_startup.py" --in-ns "$@"
fi

for a in "$@"; do
  case $a in -h|--help) exec python3 "$here/runtime_startup.py" --help ;; esac
done
if [ "$(id -u)" != 0 ]; then echo "runtime-startup.sh: must run as root" >&2; exit 2; fi
command -v python3 >/dev/null || { echo "runtime-startup.sh: python3 is needed" >&2; exit 2; }
command -v unshare >/dev/null || { echo "runtime-startup.sh: unshare (util-linux) is needed" >&2; exit 2; }
exec unshare -m --propagation private -- bash "$here/runtime-startup.sh" --__inner "$@"
