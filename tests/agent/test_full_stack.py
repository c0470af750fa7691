"""The main job as a test: scripts/demo_pod.py runs a pod from a static manifest through
berthlet -> berthd -> berth-shim -> berth (OCI runtime), networked by berth-bridge (CNI),
on an image built here and served by a local registry; and the same pod through
containerd's CRI with berth as its OCI runtime (the interop path). The script fails on
any step; here we also check what it saw and that it left nothing behind."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import agent_lib as L

DEMO = L.REPO / "scripts" / "demo_pod.py"


@pytest.mark.parametrize("endpoint", ["berthd", "containerd"])
def test_pod_from_manifest_through_berth_and_berth_bridge(endpoint):
    env = dict(os.environ, BERTHLET=L.BERTHLET)
    r = subprocess.run([sys.executable, str(DEMO), "--endpoint", endpoint], capture_output=True, text=True,
                       timeout=300, env=env)
    assert r.returncode == 0, f"demo failed:\n{r.stdout}\n{r.stderr[-4000:]}"
    out = r.stdout
    assert "GET / -> hello from pod hello-node1 (10.231.99." in out, out
    assert "container write-page: terminated Completed" in out, out
    assert "container web: running, ready=True" in out, out
    # berth's own state root lists what runs: under containerd the pause sandbox and the
    # web container; under berthd only the web container (the pod needs no pause process)
    rows = [ln for ln in out.splitlines() if " pid " in ln and "owner root" in ln]
    assert len(rows) == (1 if endpoint == "berthd" else 2) and all(" running " in ln for ln in rows), out
    if endpoint == "berthd":
        assert "monitors: 1 berth-shim process(es)" in out, out
    assert "sandboxes left: 0" in out, out
    # nothing left: bridge, mounts, temp dirs
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    assert "berth-demo0" not in links
    mounts = Path("/proc/self/mountinfo").read_text()
    assert "berth-demo-pod." not in mounts
    assert not list(Path("/tmp").glob("berth-demo-pod.*"))
