"""pytest fixtures for the CNI suite (tests/cni/run.sh runs it).

Everything happens inside network namespaces the tests create: each test gets a
private "host" namespace in which bridges, veths, iptables/nftables rules and
berth-cni itself live, and pod namespaces pinned under its temp dir. The real
host's interfaces are never touched; a leak check after each test compares them.
"""
from __future__ import annotations

import ctypes
import os

import pytest

import cni_helpers as H


def pytest_configure(config):
    if os.geteuid() != 0:
        raise pytest.UsageError("the CNI suite needs root")
    for p in (H.BERTH_CNI, H.BERTH_BRIDGE):
        if not p.exists():
            raise pytest.UsageError(f"{p} missing: build it (ninja -C <build> cni/berth-cni cni/berth-bridge) "
                                    "or set BERTH_CNI_BUILD")
    # Never leak mounts (netns pins) into the caller's namespace.
    if not os.environ.get("BERTH_CNI_NO_UNSHARE"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(0x00020000) != 0:  # CLONE_NEWNS
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
        if libc.mount(b"none", b"/", None, 0x4000 | 0x40000, None) != 0:  # MS_REC | MS_PRIVATE
            raise OSError(ctypes.get_errno(), "mount --make-rprivate /")


def root_links() -> list[dict]:
    import json
    return json.loads(H.sh("ip", "-j", "link", "show").stdout)


@pytest.fixture
def world(request):
    w = H.World(H.sanitize(request.node.name))
    try:
        yield w
        # Leak check: every test detaches what it attached; nothing may remain.
        assert w.veths() == [], f"veths left in the host namespace: {w.veths()}"
        leftovers = [f for n in w.ipam_networks() for f in w.ipam_files(n)]
        assert leftovers == [], f"address reservations left: {leftovers}"
        assert w.cache_files() == [], f"cache entries left: {w.cache_files()}"
        rules = [r for r in w.nat_rules() + w.filter_rules() + w.nat_rules(v6=True) if "10.250." in r or "fd42:" in r]
        assert rules == [], f"iptables rules left: {rules}"
    finally:
        bridges = w.bridge_names()
        w.destroy()
        # Other work may add interfaces to the real host meanwhile: look for ours only.
        ours = [l["ifname"] for l in root_links() if l["ifname"] in bridges or l.get("master") in bridges]
        assert ours == [], f"test interfaces leaked into the real host: {ours}"
        assert not w.tmp.exists()
        mounts = [l.split()[4] for l in open("/proc/self/mountinfo") if str(w.tmp) in l.split()[4]]
        assert mounts == [], f"mounts left: {mounts}"
