#!/bin/sh
# Prints the commit Berth is built from, for `--version`: git's description of the
# checkout (with -dirty when it has changes), or the .git-commit file that
# tests/package/build-deb.sh writes into the copy it builds the package from.
# Fails (meson's vcs_tag then says "unknown") when neither exists.
src=$(cd "$(dirname "$0")/.." && pwd)
if git -c safe.directory="$src" -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
  exec git -c safe.directory="$src" -C "$src" describe --always --dirty --abbrev=12
fi
[ -s "$src/.git-commit" ] && exec head -c 64 "$src/.git-commit"
exit 1
