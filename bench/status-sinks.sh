#!/bin/bash
# berthlet's status sinks under load (bench/README.md, "status-sinks"): with N pods, the
# http sink's delay from a container running in the runtime to its pod status reaching a
# webhook (p50/p99), the updates per second one sink delivers when a backlog drains, and
# berthlet's CPU and RSS with a file and an http sink on.
#
#   sudo bench/status-sinks.sh [--pods N] [--idle S] [--out FILE]
#   BERTHLET=/path/to/berthlet sudo bench/status-sinks.sh
#
# Runs in the world of tests/agent/run.sh (private mount namespace, local registry,
# private containerd, private bridge; everything removed at the end).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
AGENT_COMMAND="$here/status_sinks_bench.py" exec "$here/../tests/agent/run.sh" "$@"
