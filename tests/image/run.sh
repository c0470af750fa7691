#!/bin/bash
# The image library's tests (cri/image/tests): unit tests, then the registry-backed
# tests against Debian's docker-registry on 127.0.0.1, in a private mount namespace.
#
#   tests/image/run.sh [--junitxml=FILE] [gtest args...]
#   BUILD=/work/build-x tests/image/run.sh --gtest_filter='RegistryTest.*'
#
# BUILD: the meson build directory (default: build/). --junitxml=FILE writes one gtest
# XML report per binary: FILE with "-unit" / "-fuzz" / "-registry" before the extension.
# BERTH_FUZZ_SECONDS: time per fuzz target (default 3, see tests/lib/fuzz.hpp).
# Needs root; installs docker-registry, apache2-utils (htpasswd), busybox-static, zstd
# and openssl with apt-get when missing.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=${BUILD:-$repo/build}

if [ "$(id -u)" != 0 ]; then
  echo "tests/image/run.sh: must run as root" >&2
  exit 2
fi

need_pkgs=()
[ -x /usr/bin/docker-registry ] || need_pkgs+=(docker-registry)
command -v htpasswd >/dev/null || need_pkgs+=(apache2-utils)
[ -x /bin/busybox ] || need_pkgs+=(busybox-static)
command -v zstd >/dev/null || need_pkgs+=(zstd)
command -v openssl >/dev/null || need_pkgs+=(openssl)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "tests/image/run.sh: installing ${need_pkgs[*]}" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}") >&2 || {
    echo "tests/image/run.sh: cannot install ${need_pkgs[*]}" >&2; exit 2; }
fi

junit=""
args=()
for a in "$@"; do
  case "$a" in
    --junitxml=*) junit=${a#--junitxml=} ;;
    *) args+=("$a") ;;
  esac
done

bins=(unit:"$build/cri/image/tests/image-unit-tests" fuzz:"$build/cri/image/tests/image-fuzz-tests"
      registry:"$build/cri/image/tests/image-registry-tests")
for b in "${bins[@]}"; do
  [ -x "${b#*:}" ] || { echo "tests/image/run.sh: ${b#*:} not built (ninja -C $build)" >&2; exit 2; }
done

export BERTH_TESTS_LIB="$repo/tests/lib"
status=0
for b in "${bins[@]}"; do
  name=${b%%:*} bin=${b#*:}
  out=()
  if [ -n "$junit" ]; then
    out=(--gtest_output="xml:${junit%.xml}-$name.xml")
  fi
  echo "== image $name tests"
  # Overlay mounts made by the tests stay in this namespace and die with it.
  unshare -m --propagation private "$bin" --gtest_brief=1 "${out[@]}" "${args[@]}" || status=1
done
exit $status
