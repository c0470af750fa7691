"""berthlet end to end: a private containerd 1.6 (CRI plugin) pulling busybox-static
images from a local registry through a docker.io mirror, pods on a private bridge.
Run through tests/agent/run.sh (private mount namespace, cleanup by PID and path)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import agent_lib as L

ROOT = Path(os.environ.get("AGENT_ROOT", "/tmp/berthlet-e2e"))
TAG = os.environ.get("AGENT_TAG", "0")
BRIDGE = os.environ.get("AGENT_BRIDGE", f"bt-agent{TAG[:4]}")
SUBNET = os.environ.get("AGENT_SUBNET", "10.231.77.0/24")
CGROUP_ROOT = os.environ.get("AGENT_CGROUP_ROOT", f"/berthlet-test-{TAG}")
PAUSE = "docker.io/berth/pause:1"


@pytest.fixture(scope="session")
def registry():
    reg = L.Registry(workdir=str(ROOT / "registry"))
    reg.start()
    busybox = L.oci_image.build_image("busybox")
    L.oci_image.push(busybox, reg.addr, "library/busybox:latest")
    L.oci_image.push(busybox, reg.addr, "library/busybox:1.36")
    # The sandbox ("pause") stand-in: busybox sleeping forever as PID 1.
    base = L.oci_image.Layer(L.oci_image.busybox_tar(), "gzip")
    pause = L.oci_image.Image([base], cmd=["/bin/sleep", "2147483647"])
    L.oci_image.push(pause, reg.addr, "berth/pause:1")
    yield reg
    reg.stop()


# Every test runs against both CRI endpoints: containerd 1.6 (with runc) and berthd.
ENDPOINTS = os.environ.get("AGENT_ENDPOINTS", "containerd,berthd").split(",")


@pytest.fixture(scope="session", params=ENDPOINTS)
def cri_world(registry, request):
    cni_conf = ROOT / "cni" / "net.d"
    L.write_cni_conf(cni_conf, BRIDGE, SUBNET, ROOT / "cni" / "ipam")
    if request.param == "berthd":
        ep = L.Berthd(ROOT / "berthd", registry.addr, cni_conf, "/usr/lib/cni", Path(f"/run/bta{TAG[:6]}"))
    else:
        ep = L.Containerd(ROOT / "containerd", registry.addr, cni_conf, PAUSE)
    ep.start()
    cri = L.Cri(ep.sock, ROOT / "pycri")
    try:
        ep.wait_ready(cri)
        yield ep, cri
    finally:
        cri.remove_everything()
        ep.stop()
        subprocess.run(["ip", "link", "del", BRIDGE], stderr=subprocess.DEVNULL)


@pytest.fixture
def cri(cri_world):
    return cri_world[1]


@pytest.fixture
def runtime_name(cri_world):
    """The endpoint's runtime name: the prefix of container IDs in pod status."""
    return cri_world[0].runtime_name


@pytest.fixture
def berthlet_factory(cri_world, request):
    """Makes berthlets on the shared containerd; at the end every pod is removed through
    berthlet (manifests deleted), then anything left is removed through the CRI."""
    ctd, cri = cri_world
    made = []
    n = [0]

    def make(dirname=None):
        n[0] += 1
        root = ROOT / "berthlets" / (dirname or f"{request.node.name}-{n[0]}")
        b = L.Berthlet(root, ctd.sock, CGROUP_ROOT)
        made.append(b)
        return b

    yield make
    for b in made:
        if b.proc is not None and b.proc.poll() is None:
            for f in b.manifests.iterdir():
                f.unlink()
            try:
                L.wait_for(lambda: b.pods() == [], timeout=60, what="berthlet to remove every pod")
            finally:
                b.stop()
    leftovers = cri.sandboxes()
    if leftovers:
        for b in made:
            print(f"--- {b.logfile}\n{b.log()[-6000:]}")
    cri.remove_everything()
    # emptyDir tmpfs mounts of a berthlet killed mid-test
    for b in made:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            mnt = line.split()[4]
            if mnt.startswith(str(b.rootdir) + "/"):
                subprocess.run(["umount", "-l", mnt])
    assert cri.containers() == [], "containers left behind"
    assert not leftovers, f"sandboxes left behind by berthlet: {[s.metadata.name for s in leftovers]}"


@pytest.fixture
def berthlet(berthlet_factory):
    return berthlet_factory().start()
