"""tests/vm/run-cgroup-tests.sh never lets the cgroup v2 suite vanish from the summary:
when it cannot run it reports a skipped case, when the suite collects nothing it fails.
(A stand-in vmrun plays the VM harness; nothing boots.)"""

import os
import subprocess
import xml.etree.ElementTree as ET

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RUNNER = os.path.join(REPO, "tests", "vm", "run-cgroup-tests.sh")


def fake_vmrun(tmp_path, probe_rc, run_rc):
    p = tmp_path / "vmrun"
    p.write_text(f"#!/bin/sh\n[ \"$1\" = --probe ] && {{ echo 'vmrun: no kernel here' >&2; exit {probe_rc}; }}\nexit {run_rc}\n")
    p.chmod(0o755)
    return str(p)


def run(tmp_path, probe_rc, run_rc, *args):
    junit = tmp_path / "vm.xml"
    env = dict(os.environ, VMRUN=fake_vmrun(tmp_path, probe_rc, run_rc))
    r = subprocess.run([RUNNER, f"--junitxml={junit}", *args], env=env, capture_output=True, text=True, timeout=60)
    suites = list(ET.parse(junit).getroot().iter("testsuite")) if junit.exists() else []
    counts = [(s.get("tests"), s.get("skipped"), s.get("failures")) for s in suites]
    return r.returncode, counts, r.stdout + r.stderr


def test_harness_missing_is_a_counted_skip(tmp_path):
    rc, counts, out = run(tmp_path, 77, 0)
    assert rc == 0 and counts == [("1", "1", "0")], out
    assert "SKIPPED (no kernel here)" in out


def test_suite_collecting_nothing_fails(tmp_path):
    rc, counts, out = run(tmp_path, 0, 5)
    assert rc == 1 and counts == [("1", "0", "1")], out


def test_a_selection_matching_nothing_is_a_counted_skip(tmp_path):
    rc, counts, out = run(tmp_path, 0, 5, "-k", "no_such_test")
    assert rc == 0 and counts == [("1", "1", "0")], out


@pytest.mark.parametrize("run_rc", [124, 125])
def test_vm_failure_or_timeout_fails(tmp_path, run_rc):
    rc, counts, out = run(tmp_path, 0, run_rc)
    assert rc == 1 and counts == [("1", "0", "1")], out
