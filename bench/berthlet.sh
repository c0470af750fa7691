#!/bin/bash
# berthlet benchmark against containerd 1.6's CRI plugin (bench/README.md, "berthlet").
#
#   sudo bench/berthlet.sh [--runs N] [--pods N] [--idle S] [--out FILE]
#   BERTHLET=/path/to/berthlet sudo bench/berthlet.sh
#
# Runs in the world of tests/agent/run.sh (private mount namespace, local registry,
# private containerd, private bridge; everything removed at the end).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
AGENT_COMMAND="$here/berthlet_bench.py" exec "$here/../tests/agent/run.sh" "$@"
