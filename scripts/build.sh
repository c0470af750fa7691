#!/bin/bash
# Configures (once) and builds Berth into ./build.
set -euo pipefail
cd "$(dirname "$0")/.."
# meson compiles through ccache when it is installed (scripts/setup-deps.sh): one cache for
# this build and the Debian package's (tests/package/build-deb.sh), whose objects are the same.
export CCACHE_DIR=${CCACHE_DIR:-/var/cache/berth-ccache}
if [[ ! -f build/build.ninja ]]; then
  meson setup build --buildtype=release >/dev/null
fi
ninja -C build
