#!/bin/bash
# berthctl's start-up to its first RPC, side by side with crictl (bench/README.md, "berthctl"):
# `version` against one berthd, the two clients interleaved.
#
#   sudo bench/berthctl.sh [--runs N] [--out FILE]
#   BERTHCTL=/path/to/berthctl CRICTL=/path/to/crictl sudo bench/berthctl.sh
#
# Starts a private berthd (build/cri/berthd, not built here) under a temp dir in a private
# mount namespace; removes it at the end. crictl is taken from $CRICTL, else
# /var/tmp/berth-anchors/cri-tools/crictl, else PATH; without one its column is skipped.
set -eu
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ "$(id -u)" = 0 ] || { echo "berthctl.sh: must run as root" >&2; exit 2; }
if [ "${BERTHCTL_BENCH_IN_NS:-}" != 1 ]; then
  BERTHCTL_BENCH_IN_NS=1 exec unshare -m --propagation private -- "$0" "$@"
fi
exec /usr/bin/python3 "$here/berthctl_bench.py" "$@"
