#!/bin/bash
# The Debian package's suite (test_deb.py): contents, conffiles, maintainer scripts,
# dependencies, the binaries, and a real install + purge in a throwaway root.
#
#   tests/package/run.sh [pytest args...]                 e.g. -k conffiles, --junitxml=out.xml
#   BERTH_DEB=/path/berth_0.1.0-1_amd64.deb tests/package/run.sh   (default: built by build-deb.sh)
#
# Root (apt, dpkg-deb, mount namespaces). Installs what is missing with apt-get.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=/usr/bin/python3

if [ "$(id -u)" != 0 ]; then
  echo "package/run.sh: must run as root" >&2
  exit 2
fi

missing=()
"$PY" -c 'import pytest' 2>/dev/null || missing+=(python3-pytest)
command -v readelf >/dev/null || missing+=(binutils)
command -v systemctl >/dev/null || missing+=(systemd)
if [ ${#missing[@]} -gt 0 ]; then
  echo "package/run.sh: installing ${missing[*]}" >&2
  apt-get update -qq >/dev/null 2>&1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null ||
    { echo "package/run.sh: cannot install ${missing[*]}" >&2; exit 2; }
fi

cd "$here" && exec "$PY" -m pytest -q -p no:cacheprovider "$here/test_deb.py" "$@"
