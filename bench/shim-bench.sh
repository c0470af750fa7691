#!/bin/bash
# shim-bench.sh - berth-shim against conmon and containerd-shim-runc-v2, side by side:
# private memory per running container and the time from request to container running.
#
#   sudo bench/shim-bench.sh [--containers 10] [--runs 20] [--out results.json] [--help]
#
# Runs bench/shim_bench.py (python3, stdlib only) as root in a private mount namespace.
# Needs conmon, containerd (with ctr and containerd-shim-runc-v2), runc and busybox-static
# (Debian packages; installed with apt-get when missing). See docs/shim.md.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [ "${1:-}" = "--__inner" ]; then
  shift
  exec python3 "$here/shim_bench.py" "$@"
fi
for a in "$@"; do
  case $a in -h|--help) exec python3 "$here/shim_bench.py" --help ;; esac
done
if [ "$(id -u)" != 0 ]; then echo "shim-bench.sh: must run as root" >&2; exit 2; fi
need=()
command -v conmon >/dev/null || need+=(conmon)
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[ -x /bin/busybox ] || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  echo "shim-bench.sh: installing ${need[*]}" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}") >&2
fi
exec unshare -m --propagation private -- bash "$here/shim-bench.sh" --__inner "$@"
