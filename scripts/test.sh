#!/bin/bash
# Every test, from a fresh Debian 12 machine: install, build, unit tests, then the
# integration suite against the real kernel (root, private mount namespace).
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh || exit 1
scripts/build.sh >/dev/null || { echo "build failed"; scripts/build.sh; exit 1; }

results=$(mktemp -d /tmp/berth-results.XXXXXX)
trap 'rm -rf "$results"' EXIT
status=0

echo "== unit tests"
./build/tests/unit-tests --gtest_brief=1 --gtest_output="xml:$results/unit.xml" || status=1
./build/shim/shim-unit-tests --gtest_brief=1 --gtest_output="xml:$results/shim-unit.xml" || status=1
./build/cni/cni-unit-tests --gtest_brief=1 --gtest_output="xml:$results/cni-unit.xml" || status=1
./build/agent/agent-unit-tests --gtest_brief=1 --gtest_output="xml:$results/agent-unit.xml" || status=1
./build/ctl/ctl-unit-tests --gtest_brief=1 --gtest_output="xml:$results/ctl-unit.xml" || status=1
# berthd's stream codecs (SPDY, WebSocket): unit tests, then bounded fuzzing
./build/cri/stream/tests/stream-unit-tests --gtest_brief=1 --gtest_output="xml:$results/stream-unit.xml" || status=1
./build/cri/stream/tests/stream-fuzz-tests --gtest_brief=1 --gtest_output="xml:$results/stream-fuzz.xml" || status=1
# cri/pod: OCI specs, seccomp profiles, pinned namespaces, pod files, records (root: real
# namespaces and mounts, in a private mount namespace)
unshare -m --propagation private ./build/cri/pod/tests/cri-pod-unit-tests --gtest_brief=1 \
  --gtest_output="xml:$results/cri-pod-unit.xml" || status=1
/usr/bin/python3 -m pytest -q -p no:cacheprovider cri/pause/test_pause.py \
  --junitxml="$results/pause.xml" || status=1

echo "== integration tests (runtime)"
tests/run-integration.sh --junitxml="$results/integration.xml" -q -rfE || status=1

echo "== CNI tests (client + reference plugins + berth-bridge, in private network namespaces)"
tests/cni/run.sh --junitxml="$results/cni.xml" -q -rfE || status=1

echo "== image library tests (unit, and pulls from a local docker-registry)"
tests/image/run.sh --junitxml="$results/image.xml" || status=1

echo "== berthd tests (CRI daemon: images, pods and containers over gRPC, local docker-registry)"
tests/cri/run.sh --junitxml="$results/cri.xml" -q -rfE || status=1

echo "== berthlet tests (static pods through berthd's and containerd's CRI)"
tests/agent/run.sh --junitxml="$results/agent.xml" -q -rfE || status=1

echo "== cgroup v2 tests (pure cgroup v2 kernel in a qemu micro-VM)"
tests/vm/setup.sh || echo "vm: setup failed (cgroup v2 tests will be reported as skipped)"
tests/vm/run-cgroup-tests.sh --junitxml="$results/vm-cgroupv2.xml" -q -rfE || status=1

echo "== Debian package (dpkg-buildpackage; contents, install and purge in a throwaway root)"
deb=""
if tests/package/build-deb.sh "$results/deb"; then
  deb=$(ls "$results"/deb/berth_*.deb | head -n1)
  BERTH_DEB=$deb tests/package/run.sh --junitxml="$results/package.xml" -q -rfE || status=1
else
  echo "package: the build failed"
  status=1
fi

echo "== systemd node (systemd as PID 1 on pure cgroup v2 in a micro-VM: the .deb, its units, a static pod)"
tests/vm/run-systemd-node.sh ${deb:+--deb "$deb"} --junitxml="$results/vm-systemd.xml" -rfE || status=1

echo "== interop tests (containerd, podman and conmon driving berth; runc as control)"
tests/interop/run.sh --junitxml="$results/interop.xml" -q -rfE || status=1

# Time per suite (CI must stay well under its limit), then one summary line.
python3 - "$results" "$SECONDS" <<'PY'
import sys, glob, os, xml.etree.ElementTree as ET
passed = failed = skipped = 0
for f in sorted(glob.glob(sys.argv[1] + "/*.xml")):
    root = ET.parse(f).getroot()
    suites = [root] if root.tag == "testsuite" else root.iter("testsuite")
    seconds = 0.0
    for s in suites:
        t, fl, er, sk = (int(s.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
        if root.tag == "testsuites" and s is root:
            continue
        passed += t - fl - er - sk
        failed += fl + er
        skipped += sk
        seconds += float(s.get("time", 0) or 0)
    print(f"  {os.path.basename(f)[:-4]:14s} {seconds:7.0f} s")
print(f"total: {passed} passed, {failed} failed, {skipped} skipped in {int(sys.argv[2]) // 60} min")
PY
exit $status
