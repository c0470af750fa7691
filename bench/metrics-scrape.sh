#!/bin/bash
# Scrape time of berthd's /metrics with 100 running pods, vs containerd 1.6's /v1/metrics
# with the same pods (median, p99 over 1000 scrapes of berthd, 30 of containerd, whose
# scrape takes about a second; target: berthd < 1 ms).
#
#   sudo bench/metrics-scrape.sh [--pods N] [--scrapes N] [--peer-scrapes N] [--daemons berthd,containerd] [--out F]
#
# The set-up is bench/cri-runtime.sh's (the same packages, installed when missing; both
# daemons side by side in one private mount namespace); it runs bench/metrics_scrape.py.
CRI_BENCH_SCRIPT=metrics_scrape.py exec "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/cri-runtime.sh" "$@"
