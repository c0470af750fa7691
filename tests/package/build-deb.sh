#!/bin/bash
# Builds the Debian package berth_<version>_<arch>.deb from this source tree:
#
#   tests/package/build-deb.sh OUTDIR
#
# Installs the missing build dependencies with apt-get (root), copies the files git
# lists (tracked, plus untracked ones not ignored: the working tree as it is, and a
# clean clone the same) into a temp dir, runs dpkg-buildpackage there and moves the
# .deb into OUTDIR. The build writes nothing outside the temp dir, which is removed,
# but to the compiler cache (ccache, when installed; shared with scripts/build.sh).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

die() { echo "build-deb: $*" >&2; exit 1; }

[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
mkdir -p "$1" || die "cannot create $1"
out=$(cd "$1" && pwd)
start=$SECONDS

# apt-get install of the packages named, refreshing the lists once if they are stale.
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 && return 0
  apt-get update -qq >/dev/null 2>&1
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# The tools themselves: dpkg-buildpackage and dpkg-checkbuilddeps (dpkg-dev), dh, git.
tools=()
for t in dpkg-dev debhelper git; do
  dpkg-query -W -f='${Status}' "$t" 2>/dev/null | grep -q "install ok installed" || tools+=("$t")
done
if [ ${#tools[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing ${tools[*]}: run as root to install them"
  echo "build-deb: installing ${tools[*]}" >&2
  apt_install "${tools[@]}" || die "cannot install ${tools[*]}"
fi

# The checkout may belong to another user than the one building (CI as root).
git_() { git -c safe.directory="$repo" -C "$repo" "$@"; }
git_ rev-parse --git-dir >/dev/null 2>&1 || die "$repo is not a git checkout (the file list comes from git)"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/berth-deb.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM HUP
src=$tmp/berth
mkdir "$src"
# Files deleted in the working tree but still in the index are skipped.
git_ ls-files -z --cached --others --exclude-standard |
  (cd "$repo" && while IFS= read -r -d '' f; do { [ -e "$f" ] || [ -L "$f" ]; } && printf '%s\0' "$f"; done) |
  tar -C "$repo" --null -T - -cf - | tar -C "$src" -xf - || die "cannot copy the source tree"
# The copy has no .git: the commit for --version goes with it (scripts/git-commit.sh).
git_ describe --always --dirty --abbrev=12 > "$src/.git-commit" || die "git describe failed"

# Build-Depends from debian/control: dpkg-checkbuilddeps says what is missing, apt-get
# build-dep installs exactly that.
cd "$src" || die "no $src"
if ! dpkg-checkbuilddeps 2>/dev/null; then
  [ "$(id -u)" = 0 ] || die "unmet build dependencies: $(dpkg-checkbuilddeps 2>&1)"
  echo "build-deb: installing the missing build dependencies" >&2
  export DEBIAN_FRONTEND=noninteractive
  bd=(apt-get build-dep -y -qq --no-install-recommends "$src")
  "${bd[@]}" >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1; "${bd[@]}" >/dev/null; }
  dpkg-checkbuilddeps || die "build dependencies still unmet (see above)"
fi

# meson compiles through ccache when it is installed. The package's objects are those of
# scripts/build.sh (debian/rules builds with upstream's flags), so its cache serves both.
if [ -z "${CCACHE_DIR:-}" ] && { [ "$(id -u)" = 0 ] || [ -w /var/cache/berth-ccache ]; }; then
  export CCACHE_DIR=/var/cache/berth-ccache
fi

# The log, each line prefixed with the seconds since the start (where the time goes),
# is kept in OUTDIR. No -dbgsym package: only berth_*.deb leaves the temp dir.
log=$out/berth-build.log
echo "build-deb: dpkg-buildpackage in $src, log in $log" >&2
DEB_BUILD_OPTIONS="nocheck parallel=2 noautodbgsym" dpkg-buildpackage -us -uc -b 2>&1 |
  while IFS= read -r line; do printf '%5d %s\n' $((SECONDS - start)) "$line"; done >"$log"
if [ "${PIPESTATUS[0]}" != 0 ]; then
  tail -n 30 "$log" >&2
  die "dpkg-buildpackage failed after $((SECONDS - start)) s (log: $log)"
fi
debs=("$tmp"/berth_*.deb)
[ -f "${debs[0]}" ] || die "dpkg-buildpackage made no berth_*.deb"
mv "${debs[@]}" "$out/" || die "cannot move the .deb into $out"
for d in "${debs[@]}"; do echo "$out/$(basename "$d")"; done
echo "build-deb: built in $((SECONDS - start)) s" >&2
